"""Workspaces: synchronous create, read, update, delete and list."""

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
