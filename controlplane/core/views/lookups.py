"""Find the resources an ARM path names (case-insensitively), or answer 404."""

from controlplane.arm.errors import not_found
from controlplane.core.models import OnlineDeployment, OnlineEndpoint, Workspace
from controlplane.core.services import workspace as workspace_service


def principal_name(request) -> str:
    return request.user.get_username() if request.user else ""


def get_workspace(kwargs) -> Workspace:
    workspace = workspace_service.find(
        kwargs["subscriptionId"], kwargs["resourceGroupName"], kwargs["workspaceName"]
    )
    if workspace is None:
        raise not_found("Workspace", kwargs["workspaceName"])
    return workspace


def get_endpoint(kwargs, workspace: Workspace | None = None) -> OnlineEndpoint:
    workspace = workspace or get_workspace(kwargs)
    endpoint = (
        OnlineEndpoint.objects.select_related("workspace")
        .filter(workspace=workspace, name__iexact=kwargs["endpointName"])
        .first()
    )
    if endpoint is None:
        raise not_found("Online endpoint", kwargs["endpointName"])
    return endpoint


def get_deployment(kwargs, endpoint: OnlineEndpoint | None = None) -> OnlineDeployment:
    endpoint = endpoint or get_endpoint(kwargs)
    deployment = (
        OnlineDeployment.objects.select_related("endpoint__workspace")
        .filter(endpoint=endpoint, name__iexact=kwargs["deploymentName"])
        .first()
    )
    if deployment is None:
        raise not_found("Online deployment", kwargs["deploymentName"])
    return deployment
