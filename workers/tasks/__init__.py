"""Worker tasks, one module per resource; each is one step of one operation."""

from workers.tasks import (
    autoscale,
    batch,
    deployment,
    endpoint,
    metrics,
    reconcile,
    rollout,
    services,
)

__all__ = [
    "autoscale",
    "batch",
    "deployment",
    "endpoint",
    "metrics",
    "reconcile",
    "rollout",
    "services",
]
