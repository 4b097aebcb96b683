"""Row helpers shared by every resource write."""

from django.db import IntegrityError, transaction

from controlplane.arm.errors import conflict


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
