"""Worker tasks, one module per resource; each is one step of one operation."""

from workers.tasks import deployment, endpoint, reconcile

__all__ = ["deployment", "endpoint", "reconcile"]
