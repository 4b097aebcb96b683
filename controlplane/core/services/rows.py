"""Row helpers shared by every resource write: PUT's upsert, locking a row under the
request's preconditions, and saving with a new ETag."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from django.db import IntegrityError, transaction

from controlplane.arm.errors import Gone, bad_request, conflict
from controlplane.core.models.base import new_etag


class Fixed(NamedTuple):
    """A field set when the row is created that no later PUT may change: a change is a 400
    naming ``target``. ``message`` may use ``{name}`` (the target's last part) and
    ``{current}`` (the stored value)."""

    field: str
    value: object
    target: str
    message: str = "{name} cannot change after creation."


# The message endpoints and deployments give, naming the value the field keeps.
SAYS_CURRENT = "{name} cannot change from '{current}' after creation."


def upsert(
    queryset,
    check,
    principal: str,
    values: dict,
    *,
    new: Callable[[], dict],
    fixed: tuple[Fixed, ...] = (),
    update: Callable | None = None,
    on_create: Callable | None = None,
):
    """PUT, written once. Returns (row, created, operation or None).

    Locks the row ``queryset`` names and honours If-Match/If-None-Match (``check``).
    - No row: it is created from ``values``, the ``fixed`` fields and ``new()``, which gives
      what only a new row gets (parent, name, initial state), may refuse, and wins over
      ``values``; then ``on_create(row)`` may start its operation.
    - A row: a change to a ``fixed`` field is refused; ``update(row, values)`` applies the
      values and returns the operation it started, or else the values are saved (an
      unchanged PUT leaves ETag and timestamps alone).
    """
    with transaction.atomic():
        row = queryset.select_for_update().first()
        check(row.etag if row else None)
        if row is None:
            fields = {**values, **{f.field: f.value for f in fixed}, **new()}
            row = create_or_conflict(
                queryset.model, **fields, created_by=principal, modified_by=principal
            )
            return row, True, on_create(row) if on_create else None
        for f in fixed:
            current = getattr(row, f.field)
            if not _same(current, f.value):
                name = f.target.rsplit(".", 1)[-1]
                raise bad_request(f.message.format(name=name, current=current), f.target)
        if update is not None:
            return row, False, update(row, values)
        save_changes(row, principal, values)
        return row, False, None


def _same(current, wanted) -> bool:
    if isinstance(current, str) and isinstance(wanted, str):
        return current.lower() == wanted.lower()
    return current == wanted


def lock(row, check):
    """``row`` read again under a row lock, once the request's preconditions hold."""
    locked = type(row).objects.select_for_update().filter(pk=row.pk).first()
    if locked is None:
        raise Gone(row.name)
    check(locked.etag)
    return locked


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


def merged_sku(current: dict | None, change: dict) -> dict:
    """A PATCH's sku merged into the row's. The result must be a whole Sku: a resource that
    has none must be given its name."""
    sku = {**(current or {}), **change}
    if not sku.get("name"):
        raise bad_request("The resource has no sku to merge into: give sku.name.", "sku.name")
    return sku
