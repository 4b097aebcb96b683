"""The one place a batch job's status changes.

Legal edges::

    Queued          -> Preparing | CancelRequested | Canceled | Failed
    Preparing       -> Running | CancelRequested | Failed
    Running         -> Finalizing | CancelRequested | Failed
    Finalizing      -> Completed | Failed
    CancelRequested -> Canceled | Failed
    Completed | Failed | Canceled: terminal

A job run again after its worker died keeps its status and picks up where the ledger says.
``transition`` is a conditional UPDATE: two writers can never both move a job.
"""

from __future__ import annotations

from django.utils import timezone

from controlplane.batch.models import BatchJob, JobStatus

S = JobStatus
EDGES: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.PREPARING, S.CANCEL_REQUESTED, S.CANCELED, S.FAILED}),
    S.PREPARING: frozenset({S.RUNNING, S.CANCEL_REQUESTED, S.FAILED}),
    S.RUNNING: frozenset({S.FINALIZING, S.CANCEL_REQUESTED, S.FAILED}),
    S.FINALIZING: frozenset({S.COMPLETED, S.FAILED}),
    S.CANCEL_REQUESTED: frozenset({S.CANCELED, S.FAILED}),
}
TERMINAL = frozenset({S.COMPLETED, S.FAILED, S.CANCELED})
# What Azure's SDK waits through before it reads outputs (jobs.stream, jobs.download).
IN_PROGRESS = frozenset(EDGES) - {S.CANCEL_REQUESTED}


def sources_of(target: str) -> frozenset[str]:
    return frozenset(state for state, targets in EDGES.items() if target in targets)


def transition(job_id, target: str, *, error: dict | None = None, **fields) -> bool:
    """Move the job to ``target`` from any state with that edge; False when it is in
    another state (another writer got there first)."""
    now = timezone.now()
    values = dict(fields, status=target)
    if target == S.PREPARING:
        values.setdefault("started_at", now)
    if target in TERMINAL:
        values["ended_at"] = now
        if error is not None:
            values["error"] = error
    rows = BatchJob.objects.filter(pk=job_id, status__in=sources_of(target)).update(**values)
    return rows == 1
