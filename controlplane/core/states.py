"""The one place provisioningState and operation status change.

Legal provisioningState edges (endpoints and deployments; ``Scaling`` is deployments only)::

    (new)                         -> Creating
    Creating | Updating | Scaling -> Succeeded | Failed | Canceled | Deleting
    Succeeded | Failed | Canceled -> Updating | Scaling | Deleting
    Deleting                      -> Failed      (a successful delete removes the row)

A request changes state under a row lock after ``check_edge``; a worker changes it with
``transition``, a conditional UPDATE that touches the row only if it is still in an expected
state, so two writers can never both win and a state can never skip or regress.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from controlplane.core.choices import (
    ACTIVE_STATES,
    OPERATION_TERMINAL_STATUSES,
    TERMINAL_STATES,
    OperationStatus,
)
from controlplane.core.models.base import new_etag

EDGES: dict[str, frozenset[str]] = {
    "Creating": frozenset({"Succeeded", "Failed", "Canceled", "Deleting"}),
    "Updating": frozenset({"Succeeded", "Failed", "Canceled", "Deleting"}),
    "Scaling": frozenset({"Succeeded", "Failed", "Canceled", "Deleting"}),
    "Succeeded": frozenset({"Updating", "Scaling", "Deleting"}),
    "Failed": frozenset({"Updating", "Scaling", "Deleting"}),
    "Canceled": frozenset({"Updating", "Scaling", "Deleting"}),
    "Deleting": frozenset({"Failed"}),
}


class IllegalTransition(Exception):
    def __init__(self, current: str | None, target: str):
        super().__init__(f"provisioningState cannot move from {current} to {target}")
        self.current = current
        self.target = target


def sources_of(target: str) -> frozenset[str]:
    return frozenset(state for state, targets in EDGES.items() if target in targets)


def check_edge(current: str, target: str) -> None:
    """Raise IllegalTransition unless current -> target is an edge of the machine."""
    if target not in EDGES.get(current, frozenset()):
        raise IllegalTransition(current, target)


def is_busy(state: str) -> bool:
    """A resource in an active state has an operation running; new changes must wait."""
    return state in ACTIVE_STATES


def transition(
    model: type[models.Model], pk, target: str, *, expected: frozenset[str] | None = None
) -> bool:
    """Move one row to ``target`` if it is in ``expected`` (default: every legal source).

    Returns False when the row is gone or in another state: another writer got there first.
    """
    allowed = sources_of(target) if expected is None else expected & sources_of(target)
    rows = model.objects.filter(pk=pk, provisioning_state__in=allowed).update(
        provisioning_state=target, etag=new_etag(), modified_at=timezone.now()
    )
    return rows == 1


def finish_operation(operation_id, status: str, *, error: dict | None = None) -> bool:
    """InProgress -> Succeeded | Failed | Canceled, once. Returns False if already finished."""
    from controlplane.core.models import Operation

    assert status in OPERATION_TERMINAL_STATUSES
    rows = Operation.objects.filter(pk=operation_id, status=OperationStatus.IN_PROGRESS).update(
        status=status,
        error=error,
        ended_at=timezone.now(),
        percent_complete=100.0
        if status == OperationStatus.SUCCEEDED
        else models.F("percent_complete"),
    )
    return rows == 1


__all__ = [
    "EDGES",
    "TERMINAL_STATES",
    "IllegalTransition",
    "check_edge",
    "finish_operation",
    "is_busy",
    "sources_of",
    "transition",
]
