"""Row helpers shared by every resource write."""

from django.db import IntegrityError, transaction

from controlplane.arm.errors import conflict
from controlplane.core.models.base import new_etag


def create_or_conflict(model_class, /, **fields):
    """Insert a row whose name must be unique under its parent.

    Two concurrent PUTs of a new name both find nothing to lock; the unique constraint lets
    one win, and the other gets 409 instead of a 500.
    """
    try:
        with transaction.atomic():
            return model_class.objects.create(**fields)
    except IntegrityError:
        raise conflict(
            f"'{fields['name']}' is being created by another request; retry.", "name"
        ) from None


def save_changes(row, principal: str, values: dict | None = None) -> bool:
    """Set ``values`` on ``row`` and save it with a new ETag and systemData, if anything
    changed. Without ``values`` the caller has changed the row already and it is saved.
    Returns whether the row was written: an unchanged PUT leaves ETag and timestamps alone."""
    if values is not None:
        changed = {f: v for f, v in values.items() if getattr(row, f) != v}
        if not changed:
            return False
        for field, value in changed.items():
            setattr(row, field, value)
    row.etag = new_etag()
    row.modified_by = principal
    row.save()
    return True
