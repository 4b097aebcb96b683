"""What every operation step shares: claim the operation, finish it, fail it cleanly."""

from __future__ import annotations

import logging
from contextlib import contextmanager

from django.db import transaction
from django.db.models import F

from controlplane.core import states
from controlplane.core.choices import OperationStatus
from controlplane.core.models import Operation
from controlplane.core.services.operations import lease_deadline
from workers.decorators import TRANSIENT_ERRORS
from workers.errors import PermanentError

log = logging.getLogger(__name__)


def claim(operation_id: str) -> Operation | None:
    """Take the operation if it is still running, and extend its lease.

    Returns None when it has finished already: a re-delivered task then does nothing.
    """
    rows = Operation.objects.filter(pk=operation_id, status=OperationStatus.IN_PROGRESS).update(
        lease_expires_at=lease_deadline(), attempts=F("attempts") + 1
    )
    if rows != 1:
        log.info("operation %s already finished; nothing to do", operation_id)
        return None
    return Operation.objects.select_related("endpoint__workspace", "deployment").get(
        pk=operation_id
    )


def progress(operation: Operation, percent: float) -> None:
    Operation.objects.filter(pk=operation.pk, status=OperationStatus.IN_PROGRESS).update(
        percent_complete=percent, lease_expires_at=lease_deadline()
    )


def refresh_lease(operation: Operation) -> None:
    Operation.objects.filter(pk=operation.pk, status=OperationStatus.IN_PROGRESS).update(
        lease_expires_at=lease_deadline()
    )


def cancel(operation: Operation, reason: str) -> None:
    states.finish_operation(
        operation.pk, OperationStatus.CANCELED, error={"code": "Canceled", "message": reason}
    )


class Superseded(Exception):
    """This worker's operation was finished elsewhere (its lease lapsed and a re-drive ran
    it): whatever it was doing must touch neither the resource nor the backend."""


def still_running(operation: Operation) -> bool:
    """Lock the operation's row for the surrounding transaction and say whether it is still
    InProgress. A worker checks this before it changes a resource's state, so a worker whose
    lease lapsed cannot settle or fail a resource that a later operation now owns."""
    return (
        Operation.objects.select_for_update()
        .filter(pk=operation.pk, status=OperationStatus.IN_PROGRESS)
        .exists()
    )


def ensure_running(operation: Operation) -> None:
    """Raise Superseded unless the operation is still InProgress (before backend writes)."""
    if not Operation.objects.filter(pk=operation.pk, status=OperationStatus.IN_PROGRESS).exists():
        raise Superseded(str(operation.pk))


@contextmanager
def failing_to(operation: Operation, model, pk):
    """Run an operation step; a PermanentError or unexpected exception ends both the
    operation and the resource Failed with an ARM error, instead of leaving them running.
    A superseded step ends quietly: its operation was finished by another worker."""
    try:
        yield
    except Superseded:
        log.warning("operation %s was finished elsewhere; this run stops", operation.pk)
    except PermanentError as exc:
        fail_operation(
            operation, model, pk, {"code": exc.code, "message": exc.message, "details": exc.details}
        )
    except TRANSIENT_ERRORS:
        raise  # the task decorator retries these
    except Exception as exc:
        log.exception("operation %s failed", operation.pk)
        fail_operation(
            operation,
            model,
            pk,
            {"code": "InternalError", "message": f"{type(exc).__name__}: {exc}", "details": []},
        )


def fail_operation(operation: Operation, model, pk, error: dict) -> None:
    """End the operation Failed with ``error`` and move its resource (if any) to Failed;
    nothing when the operation was finished elsewhere."""
    with transaction.atomic():
        if not still_running(operation):
            log.warning("operation %s was finished elsewhere; not failing it", operation.pk)
            return
        if pk is not None:
            states.transition(model, pk, "Failed")
        states.finish_operation(operation.pk, OperationStatus.FAILED, error=error)
