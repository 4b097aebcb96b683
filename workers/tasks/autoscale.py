"""Autoscaler decisions sent by the router: recorded as scale events, applied as scaling."""

from __future__ import annotations

from workers.decorators import dataplane_task


@dataplane_task("weir.autoscale")
def autoscale(*, deployment_id: str, decision: dict) -> None:
    """Record ``decision`` on the deployment and, for ScaleUp/ScaleDown, start the same scale
    operation a PATCH of sku.capacity starts (the backend adds or removes replicas)."""
    from controlplane.core.services import deployment

    deployment.autoscale(deployment_id, decision)
