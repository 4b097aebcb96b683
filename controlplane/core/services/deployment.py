"""Online deployment writes: create or replace, patch (tags, scale), delete."""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.db import transaction

from controlplane.arm.errors import ArmError, bad_request, conflict
from controlplane.core import states
from controlplane.core.choices import DeploymentProvisioningState as State
from controlplane.core.choices import OperationKind, ScaleAction
from controlplane.core.models import OnlineDeployment, OnlineEndpoint, Operation, ScaleEvent
from controlplane.core.services import operations
from controlplane.core.services.rows import (
    SAYS_CURRENT,
    Fixed,
    lock,
    merged_sku,
    save_changes,
    upsert,
)

# Who changes an autoscaled deployment's instance count (createdBy/lastModifiedBy).
AUTOSCALER = "weir-autoscaler"

DEPLOYMENT_FIELDS = (
    "tags",
    "kind",
    "identity",
    "sku",
    "endpoint_compute_type",
    "description",
    "properties",
    "code_configuration",
    "environment_id",
    "environment_variables",
    "model",
    "model_mount_path",
    "instance_type",
    "app_insights_enabled",
    "egress_public_network_access",
    "data_collector",
    "liveness_probe",
    "readiness_probe",
    "request_settings",
    "scale_settings",
    "container_resource_requirements",
)


def normalize(data: dict) -> dict:
    values = {field: data.get(field) for field in DEPLOYMENT_FIELDS}
    for field in ("tags", "properties", "environment_variables"):
        values[field] = values[field] or {}
    values["sku"] = values["sku"] or {"name": "Default", "capacity": 1}
    values["sku"].setdefault("capacity", 1)
    if values["sku"]["capacity"] is None:
        values["sku"]["capacity"] = 1
    values["instance_count"] = values["sku"]["capacity"]
    if _autoscaled(values):
        count = _within_limits(values["scale_settings"], values["instance_count"])
        values["sku"]["capacity"] = values["instance_count"] = count
    return values


def _autoscaled(values: dict) -> bool:
    return (values.get("scale_settings") or {}).get("scaleType") == "TargetUtilization"


def _within_limits(scale_settings: dict, count: int) -> int:
    return min(max(count, scale_settings["minInstances"]), scale_settings["maxInstances"])


def _lock_endpoint(endpoint: OnlineEndpoint) -> OnlineEndpoint:
    endpoint = OnlineEndpoint.objects.select_for_update().get(pk=endpoint.pk)
    if endpoint.provisioning_state == State.DELETING:
        raise conflict(f"Endpoint '{endpoint.name}' is being deleted.")
    return endpoint


def find(endpoint: OnlineEndpoint, name: str) -> OnlineDeployment | None:
    return _by_name(endpoint, name).select_related("endpoint__workspace").first()


def _by_name(endpoint: OnlineEndpoint, name: str):
    return OnlineDeployment.objects.filter(endpoint=endpoint, name__lower=name.lower())


def create_or_update(
    endpoint: OnlineEndpoint, name: str, data: dict, principal: str, check_preconditions
) -> tuple[OnlineDeployment, bool, Operation | None]:
    """PUT: create (Creating), change instance count only (Scaling) or replace (Updating)."""
    values = normalize(data)
    compute_type = values.pop("endpoint_compute_type")

    def new() -> dict:
        limit = settings.WEIR_MAX_DEPLOYMENTS_PER_ENDPOINT
        if endpoint.deployments.count() >= limit:
            raise bad_request(
                f"Endpoint '{endpoint.name}' already has {limit} deployments, the maximum.",
                "name",
            )
        return {"endpoint": endpoint, "name": name, "provisioning_state": State.CREATING}

    def update(deployment: OnlineDeployment, values: dict) -> Operation | None:
        if _autoscaled(values):
            # The autoscaler owns the instance count; a PUT only moves it into min..max.
            count = _within_limits(values["scale_settings"], deployment.instance_count)
            values["sku"] = {**values["sku"], "capacity": count}
            values["instance_count"] = count
        changed = {f for f, v in values.items() if getattr(deployment, f) != v}
        if not changed and deployment.provisioning_state == State.SUCCEEDED:
            return None
        scale_only = changed <= {"sku", "instance_count"} and changed
        target = State.SCALING if scale_only else State.UPDATING
        states.check_edge(deployment.provisioning_state, target)
        for field, value in values.items():
            setattr(deployment, field, value)
        _save_with_state(deployment, target, principal)
        kind = OperationKind.SCALE_DEPLOYMENT if scale_only else OperationKind.UPDATE_DEPLOYMENT
        return operations.start(kind, resource=deployment, principal=principal)

    def created(deployment: OnlineDeployment) -> Operation:
        return operations.start(
            OperationKind.CREATE_OR_UPDATE_DEPLOYMENT, resource=deployment, principal=principal
        )

    with transaction.atomic():
        endpoint = _lock_endpoint(endpoint)
        return upsert(
            _by_name(endpoint, name),
            check_preconditions,
            principal,
            values,
            new=new,
            fixed=(
                Fixed("location", data["location"], "location", SAYS_CURRENT),
                Fixed("endpoint_compute_type", compute_type, "properties.endpointComputeType"),
            ),
            update=update,
            on_create=created,
        )


def patch(
    deployment: OnlineDeployment, data: dict, principal: str, check_preconditions
) -> Operation | None:
    """PATCH: tags replace the map; sku merges, and a new sku.capacity scales (an operation)."""
    with transaction.atomic():
        _lock_endpoint(deployment.endpoint)
        deployment = lock(deployment, check_preconditions)
        if states.is_busy(deployment.provisioning_state):
            raise states.IllegalTransition(deployment.provisioning_state, State.UPDATING)
        if "tags" in data:
            deployment.tags = data["tags"] or {}
        scaling = False
        if data.get("sku"):
            sku = merged_sku(deployment.sku, data["sku"])
            capacity = sku.get("capacity") or deployment.instance_count
            sku["capacity"] = capacity
            scaling = capacity != deployment.instance_count
            deployment.sku = sku
            deployment.instance_count = capacity
        if not scaling:
            save_changes(deployment, principal)
            return None
        states.check_edge(deployment.provisioning_state, State.SCALING)
        _save_with_state(deployment, State.SCALING, principal)
        return operations.start(
            OperationKind.SCALE_DEPLOYMENT, resource=deployment, principal=principal
        )


def delete(deployment: OnlineDeployment, principal: str, check_preconditions) -> Operation:
    """DELETE: refused while the endpoint sends it live or mirrored traffic."""
    with transaction.atomic():
        endpoint = OnlineEndpoint.objects.select_for_update().get(pk=deployment.endpoint_id)
        deployment = lock(deployment, check_preconditions)
        for field, weights in (
            ("traffic", endpoint.traffic),
            ("mirrorTraffic", endpoint.mirror_traffic),
        ):
            weight = {k.lower(): v for k, v in weights.items()}.get(deployment.name.lower(), 0)
            if weight:
                raise ArmError(
                    400,
                    "BadArgument",
                    f"Deployment '{deployment.name}' receives {weight}% of the endpoint's "
                    f"{field}; set it to 0 before deleting the deployment.",
                    f"properties.{field}",
                )
        if deployment.provisioning_state == State.DELETING:
            running = operations.running_for(deployment)
            if running is not None:
                return running
        else:
            states.check_edge(deployment.provisioning_state, State.DELETING)
        _save_with_state(deployment, State.DELETING, principal)
        return operations.start(
            OperationKind.DELETE_DEPLOYMENT,
            resource=deployment,
            principal=principal,
            result_status=204,
        )


def record_autoscale(deployment_id, decision: dict) -> ScaleEvent | None:
    """Record one autoscaler decision as a scale event. A ScaleUp/ScaleDown that still fits
    the deployment (settled, same count, autoscaled) also moves it to Scaling with a scale
    operation that the calling worker runs itself (not enqueued): the event's operation."""
    with transaction.atomic():
        deployment = OnlineDeployment.objects.select_for_update().filter(pk=deployment_id).first()
        if deployment is None:
            return None
        operation = None
        if decision["action"] == ScaleAction.AT_MAX_INSTANCES:
            outcome = "Not scaled: the deployment is at maxInstances."
        elif not _autoscaled({"scale_settings": deployment.scale_settings}):
            outcome = "Not applied: the deployment no longer uses TargetUtilization."
        elif deployment.provisioning_state != State.SUCCEEDED:
            outcome = f"Not applied: the deployment is {deployment.provisioning_state}."
        elif deployment.instance_count != decision["fromInstances"]:
            outcome = f"Not applied: the instance count is {deployment.instance_count} now."
        else:
            count = decision["toInstances"]
            deployment.sku = {**(deployment.sku or {}), "capacity": count}
            deployment.instance_count = count
            _save_with_state(deployment, State.SCALING, AUTOSCALER)
            operation = operations.start(
                OperationKind.SCALE_DEPLOYMENT,
                resource=deployment,
                principal=AUTOSCALER,
                enqueue_task=False,
            )
            outcome = "Applied."
        return ScaleEvent.objects.create(
            deployment=deployment,
            decided_at=datetime.fromtimestamp(decision["decidedAt"], UTC),
            action=decision["action"],
            from_instances=decision["fromInstances"],
            to_instances=decision["toInstances"],
            utilization_percentage=decision["utilizationPercentage"],
            target_utilization_percentage=decision["targetUtilizationPercentage"],
            busy_replicas=decision["busyReplicas"],
            queued_requests=decision["queuedRequests"],
            ready_replicas=decision["readyReplicas"],
            min_instances=decision["minInstances"],
            max_instances=decision["maxInstances"],
            reason=decision["reason"],
            outcome=outcome,
            operation=operation,
        )


def _save_with_state(deployment: OnlineDeployment, state: str, principal: str) -> None:
    deployment.provisioning_state = state
    save_changes(deployment, principal)
