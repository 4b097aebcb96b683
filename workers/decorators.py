"""The one way to declare a Weir task (raw ``shared_task`` is banned by ruff)."""

from __future__ import annotations

from django.db import OperationalError

from workers.celery_app import app

# Errors worth retrying: the database blipped or another worker holds the row.
TRANSIENT_ERRORS = (OperationalError,)
LONG_RUNNING = {
    "bind": True,
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT_ERRORS,
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 10,
}


def provisioning_task(name: str):
    """A long-running, idempotent step keyed by an operation id.

    acks_late + reject_on_worker_lost: a task whose worker dies is delivered again rather
    than lost; the task itself returns early when its operation already finished.
    """
    return app.task(name=name, **LONG_RUNNING)


def build_task(name: str):
    """A provisioning step that may build an environment or image: the same guarantees;
    CELERY_TASK_ROUTES sends it to the builds queue (WEIR_BUILD_QUEUE)."""
    return app.task(name=name, **LONG_RUNNING)


def query_task(name: str):
    """A short read the control plane waits on (controlplane.tasks.call): its result is kept
    briefly, and a lost one is simply asked again."""
    return app.task(name=name, ignore_result=False)


def periodic_task(name: str):
    """A short, self-contained task run by beat; a lost run is simply run again next tick."""
    return app.task(name=name, ignore_result=True)


def dataplane_task(name: str):
    """A short task sent by a data-plane process (by name, without importing Weir's code):
    acked after it ran, so a worker lost mid-way gets it again."""
    return app.task(name=name, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
