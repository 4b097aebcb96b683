"""The one place a rollout's status changes.

Legal edges::

    Pending  -> Running | RolledBack | Failed
    Running  -> Paused | Succeeded | RolledBack | Failed
    Paused   -> Running | RolledBack | Failed
    Succeeded | RolledBack | Failed: terminal

``transition`` is a conditional UPDATE: it moves the rollout only from a state with that edge,
so a request (pause, resume) and the controller can never both win.
"""

from __future__ import annotations

from django.utils import timezone

from controlplane.rollout.models import Rollout, RolloutStatus

S = RolloutStatus
EDGES: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.RUNNING, S.ROLLED_BACK, S.FAILED}),
    S.RUNNING: frozenset({S.PAUSED, S.SUCCEEDED, S.ROLLED_BACK, S.FAILED}),
    S.PAUSED: frozenset({S.RUNNING, S.ROLLED_BACK, S.FAILED}),
}
TERMINAL = frozenset({S.SUCCEEDED, S.ROLLED_BACK, S.FAILED})
ACTIVE = frozenset(EDGES)


def sources_of(target: str) -> frozenset[str]:
    return frozenset(state for state, targets in EDGES.items() if target in targets)


def transition(rollout_id, target: str, **fields) -> bool:
    """Move the rollout to ``target`` from any state with that edge; False when it is in
    another state (another writer got there first)."""
    values = dict(fields, status=target, modified_at=timezone.now())
    if target in TERMINAL:
        values["ended_at"] = timezone.now()
    rows = Rollout.objects.filter(pk=rollout_id, status__in=sources_of(target)).update(**values)
    return rows == 1
