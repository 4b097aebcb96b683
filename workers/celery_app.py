"""The Celery application the workers run: the control plane's client app (same settings,
same task names), with the workers' tasks registered."""

import signal
import threading

from celery import signals

from controlplane.tasks import app

app.autodiscover_tasks(["workers"], related_name="tasks")


@signals.worker_ready.connect
def hangup_stops_the_worker(**_) -> None:
    """SIGHUP stops the worker as SIGTERM does. Off a terminal, Celery's own SIGHUP handler
    re-executes the worker at exit: the process bin/start's trap waits on would become a
    new worker and outlive it."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, signal.getsignal(signal.SIGTERM))
