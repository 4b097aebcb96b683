"""How the control plane hands work to the workers: by task name, through the broker. It
imports none of the workers' code; the task names are the contract."""

from __future__ import annotations

import os

from celery import Celery
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("weir")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery reads these two from the environment ahead of its configuration: one set there gets
# the settings' URL, which carries WEIR_REDIS_PASSWORD (without it Redis answers NOAUTH). One
# not set stays unset, so the processes this one starts read their own settings.
for _name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
    if _name in os.environ:
        os.environ[_name] = getattr(settings, _name)

# The worker tasks the control plane sends (see workers/tasks/).
APPLY_ENDPOINT = "weir.apply_endpoint"
DELETE_ENDPOINT = "weir.delete_endpoint"
APPLY_DEPLOYMENT = "weir.apply_deployment"
SCALE_DEPLOYMENT = "weir.scale_deployment"
DELETE_DEPLOYMENT = "weir.delete_deployment"
DEPLOYMENT_LOGS = "weir.deployment_logs"
RUN_BATCH_JOB = "weir.run_batch_job"


def send(name: str, **kwargs) -> None:
    """Enqueue task ``name``; its queue comes from CELERY_TASK_ROUTES."""
    app.send_task(name, kwargs=kwargs)


def call(name: str, timeout: float, **kwargs):
    """Run task ``name`` on a worker and wait for its result (celery.exceptions.TimeoutError
    when no worker answered in time)."""
    return app.send_task(name, kwargs=kwargs, ignore_result=False).get(timeout=timeout)
