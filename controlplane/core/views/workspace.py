"""Workspaces: synchronous create, read, update, delete and list, and their discovery
document."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from controlplane.arm.errors import not_found
from controlplane.arm.resources import ArmListView, ArmResourceView
from controlplane.core import names
from controlplane.core.models import Workspace
from controlplane.core.serializers.workspace import WorkspaceSerializer, WorkspaceUpdateSerializer
from controlplane.core.services import workspace as workspace_service


class WorkspaceListView(ArmListView):
    serializer_class = WorkspaceSerializer
    operation_id = "Workspaces_ListByResourceGroup"

    def rows(self):
        queryset = Workspace.objects.filter(
            subscription_id__lower=self.kwargs["subscriptionId"].lower()
        )
        if "resourceGroupName" in self.kwargs:
            queryset = queryset.filter(
                resource_group__lower=self.kwargs["resourceGroupName"].lower()
            )
        return queryset.order_by("created_at")


class SubscriptionWorkspaceListView(WorkspaceListView):
    operation_id = "Workspaces_ListBySubscription"


class WorkspaceView(ArmResourceView):
    serializer_class = WorkspaceSerializer
    update_serializer_class = WorkspaceUpdateSerializer
    operation_group = "Workspaces"
    label = "Workspace"
    name_kwarg = "workspaceName"
    service = workspace_service

    name_rules = (names.WORKSPACE, names.RESOURCE_GROUP)

    def parent(self) -> tuple[str, str]:
        return self.kwargs["subscriptionId"], self.kwargs["resourceGroupName"]

    def find(self, scope):
        return workspace_service.find(*scope, self.resource_name)


# The services a discovery document names; Weir serves them all on its one API host.
DISCOVERY_SERVICES = (
    "api",
    "catalog",
    "experimentation",
    "gallery",
    "history",
    "hyperdrive",
    "labeling",
    "modelmanagement",
    "pipelines",
    "studio",
    "studiourl",
)


@extend_schema(exclude=True)
class DiscoveryView(APIView):
    """``GET`` a workspace's ``discoveryUrl``: the base URL of each of its data-plane services
    (run history, the management front end Azure's SDK lists batch jobs from, ...). Like
    Azure's, it names only URLs and is read before any call that needs a token."""

    authentication_classes: list = []
    permission_classes: list = []

    def get(self, request, workspaceId):
        if not Workspace.objects.filter(workspace_id=workspaceId).exists():
            raise not_found("Workspace", str(workspaceId))
        base = request.build_absolute_uri("/").rstrip("/")
        return Response({service: base for service in DISCOVERY_SERVICES})
