"""Find the resources an ARM path names (case-insensitively), or answer 404."""

from controlplane.arm.errors import not_found
from controlplane.core.models import OnlineDeployment, OnlineEndpoint, Workspace
from controlplane.core.services import deployment as deployment_service
from controlplane.core.services import endpoint as endpoint_service
from controlplane.core.services import workspace as workspace_service


def get_workspace(kwargs) -> Workspace:
    workspace = workspace_service.find(
        kwargs["subscriptionId"], kwargs["resourceGroupName"], kwargs["workspaceName"]
    )
    if workspace is None:
        raise not_found("Workspace", kwargs["workspaceName"])
    return workspace


def get_endpoint(kwargs, workspace: Workspace | None = None) -> OnlineEndpoint:
    endpoint = endpoint_service.find(workspace or get_workspace(kwargs), kwargs["endpointName"])
    if endpoint is None:
        raise not_found("Online endpoint", kwargs["endpointName"])
    return endpoint


def get_deployment(kwargs, endpoint: OnlineEndpoint | None = None) -> OnlineDeployment:
    endpoint = endpoint or get_endpoint(kwargs)
    deployment = deployment_service.find(endpoint, kwargs["deploymentName"])
    if deployment is None:
        raise not_found("Online deployment", kwargs["deploymentName"])
    return deployment
