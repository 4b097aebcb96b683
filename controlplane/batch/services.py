"""Batch endpoint and deployment writes (synchronous: nothing runs until a job does)."""

from __future__ import annotations

from django.db import transaction

from controlplane.arm.errors import bad_request
from controlplane.batch.models import BatchDeployment, BatchEndpoint
from controlplane.core.choices import OperationKind
from controlplane.core.services import compute as compute_service
from controlplane.core.services import operations
from controlplane.core.services.rows import SAYS_CURRENT, Fixed, lock, save_changes, upsert

ENDPOINT_FIELDS = ("tags", "kind", "identity", "auth_mode", "description", "properties")
DEPLOYMENT_FIELDS = (
    "tags",
    "kind",
    "identity",
    "description",
    "properties",
    "code_configuration",
    "environment_id",
    "environment_variables",
    "model",
    "compute",
    "resources",
    "mini_batch_size",
    "max_concurrency_per_instance",
    "output_action",
    "output_file_name",
    "retry_settings",
    "error_threshold",
    "logging_level",
)


def written(resource, principal: str, kind=OperationKind.WRITE_BATCH_RESOURCE, status=200):
    return operations.finished(
        kind,
        resource_id=resource.arm_id,
        subscription_id=_workspace(resource).subscription_id,
        principal=principal,
        result_status=status,
    )


def _workspace(resource):
    if isinstance(resource, BatchDeployment):
        return resource.endpoint.workspace
    return resource.workspace


# Endpoints


def find_endpoint(workspace, name: str) -> BatchEndpoint | None:
    return _endpoint_by_name(workspace, name).select_related("workspace").first()


def _endpoint_by_name(workspace, name: str):
    return BatchEndpoint.objects.filter(workspace=workspace, name__lower=name.lower())


def _values(data: dict, fields: tuple[str, ...], maps: tuple[str, ...]) -> dict:
    values = {field: data.get(field) for field in fields}
    for field in maps:
        values[field] = values[field] or {}
    return values


class EndpointService:
    def create_or_update(self, workspace, name: str, data: dict, principal: str, check):
        values = _values(data, ENDPOINT_FIELDS, ("tags", "properties"))
        default = data.get("default_deployment")

        def update(endpoint, values):
            if default is not None:
                _check_default(endpoint, default)
            changed = save_changes(endpoint, principal, {**values, "default_deployment": default})
            # The same PUT twice records one operation, as for online endpoints.
            return written(endpoint, principal) if changed else None

        def on_create(endpoint):
            if default is not None:
                _check_default(endpoint, default)
            return written(endpoint, principal)

        return upsert(
            _endpoint_by_name(workspace, name),
            check,
            principal,
            values,
            new=lambda: {"workspace": workspace, "name": name, "default_deployment": None},
            fixed=(Fixed("location", data["location"], "location", SAYS_CURRENT),),
            update=update,
            on_create=on_create,
        )

    def patch(self, endpoint, data: dict, principal: str, check) -> None:
        with transaction.atomic():
            endpoint = lock(endpoint, check)
            if "tags" in data:
                endpoint.tags = data["tags"] or {}
            if "identity" in data:
                endpoint.identity = data["identity"]
            save_changes(endpoint, principal)

    def delete(self, endpoint, principal: str, check):
        """The endpoint and its deployments go at once; their jobs stay, with their names."""
        with transaction.atomic():
            endpoint = lock(endpoint, check)
            operation = written(endpoint, principal, OperationKind.DELETE_BATCH_RESOURCE, 204)
            endpoint.delete()
            return operation


def _check_default(endpoint: BatchEndpoint, name: str) -> None:
    if not endpoint.deployments.filter(name__lower=name.lower()).exists():
        raise bad_request(
            f"defaults.deploymentName names '{name}', which is not a deployment of batch "
            f"endpoint '{endpoint.name}'.",
            "properties.defaults.deploymentName",
        )


# Deployments


def find_deployment(endpoint, name: str) -> BatchDeployment | None:
    return _deployment_by_name(endpoint, name).select_related("endpoint__workspace").first()


def _deployment_by_name(endpoint, name: str):
    return BatchDeployment.objects.filter(endpoint=endpoint, name__lower=name.lower())


def batch_compute(workspace, reference: str | None):
    """The AmlCompute a deployment names (``name``, ``azureml:name`` or its ARM id), or a
    400 naming properties.compute."""
    compute = compute_service.named(workspace, reference)
    if compute is None:
        raise bad_request(
            f"Compute '{reference}' does not exist in this workspace; create an AmlCompute "
            "cluster first.",
            "properties.compute",
        )
    if compute.compute_type != "AmlCompute":
        raise bad_request(
            f"Compute '{compute.name}' is a {compute.compute_type} compute; batch deployments "
            "run on AmlCompute clusters.",
            "properties.compute",
        )
    return compute


def deployments_on(compute) -> list[str]:
    """The batch deployments that run on ``compute`` (it may not be deleted under them)."""
    return [
        f"batch deployment '{deployment.endpoint.name}/{deployment.name}'"
        for deployment in BatchDeployment.objects.filter(
            endpoint__workspace=compute.workspace
        ).select_related("endpoint")
        if compute_service.named(compute.workspace, deployment.compute) == compute
    ]


def max_instances(compute) -> int:
    return int(compute.properties.get("scaleSettings", {}).get("maxNodeCount") or 1)


class DeploymentService:
    def create_or_update(self, endpoint, name: str, data: dict, principal: str, check):
        values = _values(
            data,
            DEPLOYMENT_FIELDS,
            ("tags", "properties", "environment_variables", "resources", "retry_settings"),
        )
        compute = batch_compute(endpoint.workspace, values["compute"])
        instances = values["resources"].get("instanceCount", 1)
        if instances > max_instances(compute):
            raise bad_request(
                f"resources.instanceCount is {instances}, but compute '{compute.name}' has at "
                f"most {max_instances(compute)} node(s) (scaleSettings.maxNodeCount).",
                "properties.resources.instanceCount",
            )

        def update(deployment, values):
            changed = save_changes(deployment, principal, values)
            return written(deployment, principal) if changed else None

        return upsert(
            _deployment_by_name(endpoint, name),
            check,
            principal,
            values,
            new=lambda: {"endpoint": endpoint, "name": name},
            fixed=(Fixed("location", data["location"], "location", SAYS_CURRENT),),
            update=update,
            on_create=lambda deployment: written(deployment, principal),
        )

    def patch(self, deployment, data: dict, principal: str, check) -> None:
        with transaction.atomic():
            deployment = lock(deployment, check)
            if "tags" in data:
                deployment.tags = data["tags"] or {}
            if "description" in (data.get("properties") or {}):
                deployment.description = data["properties"]["description"]
            save_changes(deployment, principal)

    def delete(self, deployment, principal: str, check):
        """Its jobs stay (and a running one finishes with the settings it started with); an
        endpoint whose default it was has no default any more."""
        with transaction.atomic():
            deployment = lock(deployment, check)
            operation = written(deployment, principal, OperationKind.DELETE_BATCH_RESOURCE, 204)
            BatchEndpoint.objects.filter(
                pk=deployment.endpoint_id, default_deployment__iexact=deployment.name
            ).update(default_deployment=None)
            deployment.delete()
            return operation


endpoints = EndpointService()
deployments = DeploymentService()
