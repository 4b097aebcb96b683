"""Autoscaler decisions sent by the router: recorded as scale events and applied here, in
one hop, by the backend's scale."""

from __future__ import annotations

from controlplane.core.services import deployment as deployment_service
from workers.decorators import dataplane_task
from workers.tasks.base import claim
from workers.tasks.deployment import run_scale


@dataplane_task("weir.autoscale")
def autoscale(*, deployment_id: str, decision: dict) -> None:
    """Record ``decision`` on the deployment; a ScaleUp/ScaleDown that still applies leaves
    the deployment Scaling with an operation, which this task runs to Succeeded (or Failed)
    at once: the backend adds or removes replicas, nothing is rebuilt. Should this worker
    die meanwhile, the reconciler re-drives the operation as weir.scale_deployment."""
    event = deployment_service.record_autoscale(deployment_id, decision)
    if event is None or event.operation_id is None:
        return
    operation = claim(str(event.operation_id))
    if operation is not None:
        run_scale(operation, operation.deployment)
