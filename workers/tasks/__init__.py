"""Worker tasks, one module per resource; each is one step of one operation."""

from workers.tasks import autoscale, deployment, endpoint, reconcile

__all__ = ["autoscale", "deployment", "endpoint", "reconcile"]
