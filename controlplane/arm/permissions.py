"""Authorization of every API request by role (controlplane.access): a view needs nothing of
its own. A list view that can show rows one by one (``filters_rows``) lets a caller who may
read only some of the rows see those; a view whose scope is not its path (the audit log's,
read over the scope its query names) says what it is with ``access_request()``."""

from rest_framework import permissions


class ArmScopePermission(permissions.BasePermission):
    def has_permission(self, request, view) -> bool:
        # Imported here: DRF imports this module while arm.errors (which the check raises)
        # is still being imported.
        from controlplane.access.authorize import authorize

        if not (request.user and request.user.is_authenticated):
            return False
        named = getattr(view, "access_request", None)
        request.access = authorize(
            request, getattr(view, "filters_rows", False), named() if named else None
        )
        return True
