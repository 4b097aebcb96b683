"""The Celery application the workers run: the control plane's client app (same settings,
same task names), with the workers' tasks registered."""

from controlplane.tasks import app

app.autodiscover_tasks(["workers"], related_name="tasks")
