"""The check every API request passes (controlplane.arm.permissions): the action its path and
method name (controlplane.access.actions), allowed over its scope by the caller's roles, or
ARM's ``403 AuthorizationFailed`` naming the principal, the action and the scope."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from controlplane.access import actions
from controlplane.access.rbac import Grants
from controlplane.arm.errors import ArmError

# Operation status and result polls are reads of the resource the operation changes.
OPERATION_TYPES = ("/mfeOperationsStatus", "/mfeOperationResults")


@dataclass(frozen=True)
class Access:
    grants: Grants
    request: actions.Request
    # Only some rows of the listed collection may be read: the list shows those.
    partial: bool = False

    def shows(self, row) -> bool:
        return not self.partial or self.grants.allows(self.request.row_action, row.arm_id)


def authorize(request, filters_rows: bool, named: actions.Request | None = None) -> Access:
    """Raise ArmError 403 unless the caller may make ``request``; ``filters_rows``: the view
    can show a list's rows one by one (a caller with read on only some of them); ``named``:
    the action and scope the view names, instead of its path's."""
    wanted = named or operation_target(actions.of(request.method, request.path_info))
    grants = Grants(request.user)
    if grants.allows(wanted.action, wanted.scope):
        return Access(grants, wanted)
    if wanted.lists and filters_rows and grants.allows_below(wanted.row_action, wanted.scope):
        return Access(grants, wanted, partial=True)
    raise denied(grants, wanted)


def denied(grants: Grants, wanted: actions.Request) -> ArmError:
    principal = grants.principal
    return ArmError(
        403,
        "AuthorizationFailed",
        f"The client '{principal.user.get_username()}' with object id '{principal.object_id}' "
        f"does not have authorization to perform action '{wanted.action}' over scope "
        f"'{wanted.scope}' or the scope is invalid.",
    )


def operation_target(wanted: actions.Request) -> actions.Request:
    """An operation poll as the read of the resource it changes."""
    if not wanted.action.endswith(tuple(f"{kind}/read" for kind in OPERATION_TYPES)):
        return wanted
    from controlplane.core.models import Operation

    try:
        operation_id = uuid.UUID(wanted.scope.rsplit("/", 1)[-1])
    except ValueError:
        return wanted
    resource = Operation.objects.filter(pk=operation_id).values_list("resource_id", flat=True)
    resource_id = resource.first()
    if resource_id is None:
        return wanted
    return actions.Request(actions.of("GET", resource_id).action, resource_id)
