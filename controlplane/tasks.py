"""How the control plane hands work to the workers: by task name, through the broker. It
imports none of the workers' code; the task names are the contract."""

from __future__ import annotations

import os

from celery import Celery
from django.conf import settings

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

app = Celery("weir")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery reads these two from the environment ahead of its configuration; the settings' URLs
# carry WEIR_REDIS_PASSWORD (a URL without it would be refused NOAUTH), so they go back there.
for _name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
    os.environ[_name] = getattr(settings, _name)

# The worker tasks the control plane sends (see workers/tasks/).
APPLY_ENDPOINT = "weir.apply_endpoint"
DELETE_ENDPOINT = "weir.delete_endpoint"
APPLY_DEPLOYMENT = "weir.apply_deployment"
SCALE_DEPLOYMENT = "weir.scale_deployment"
DELETE_DEPLOYMENT = "weir.delete_deployment"
DEPLOYMENT_LOGS = "weir.deployment_logs"


def send(name: str, **kwargs) -> None:
    """Enqueue task ``name``; its queue comes from CELERY_TASK_ROUTES."""
    app.send_task(name, kwargs=kwargs)


def call(name: str, timeout: float, **kwargs):
    """Run task ``name`` on a worker and wait for its result (celery.exceptions.TimeoutError
    when no worker answered in time)."""
    return app.send_task(name, kwargs=kwargs, ignore_result=False).get(timeout=timeout)
