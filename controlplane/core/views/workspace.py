"""Workspaces: synchronous create, read, update, delete and list."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from controlplane.arm.pagination import page
from controlplane.arm.responses import resource_response
from controlplane.arm.schema import DELETED, paged
from controlplane.arm.views import ArmView
from controlplane.core import names
from controlplane.core.models import Workspace
from controlplane.core.serializers.workspace import WorkspaceSerializer, WorkspaceUpdateSerializer
from controlplane.core.services import workspace as workspace_service
from controlplane.core.views.lookups import get_workspace, principal_name


class WorkspaceListView(ArmView):
    @extend_schema(
        operation_id="Workspaces_ListByResourceGroup", responses=paged(WorkspaceSerializer)
    )
    def get(self, request, subscriptionId, resourceGroupName=None):
        queryset = Workspace.objects.filter(subscription_id__iexact=subscriptionId)
        if resourceGroupName is not None:
            queryset = queryset.filter(resource_group__iexact=resourceGroupName)
        return Response(
            page(request, queryset.order_by("created_at"), lambda w: WorkspaceSerializer(w).data)
        )


class SubscriptionWorkspaceListView(WorkspaceListView):
    @extend_schema(
        operation_id="Workspaces_ListBySubscription", responses=paged(WorkspaceSerializer)
    )
    def get(self, request, subscriptionId):
        return super().get(request, subscriptionId)


class WorkspaceView(ArmView):
    @extend_schema(operation_id="Workspaces_Get", responses=WorkspaceSerializer)
    def get(self, request, **kwargs):
        return resource_response(WorkspaceSerializer, get_workspace(kwargs))

    @extend_schema(
        operation_id="Workspaces_CreateOrUpdate",
        request=WorkspaceSerializer,
        responses={200: WorkspaceSerializer, 201: WorkspaceSerializer},
    )
    def put(self, request, subscriptionId, resourceGroupName, workspaceName):
        names.check_workspace_name(workspaceName, resourceGroupName)
        serializer = WorkspaceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        workspace, created = workspace_service.create_or_update(
            subscriptionId,
            resourceGroupName,
            workspaceName,
            serializer.validated_data,
            principal_name(request),
            self.check_preconditions,
        )
        return resource_response(WorkspaceSerializer, workspace, status=201 if created else 200)

    @extend_schema(
        operation_id="Workspaces_Update",
        request=WorkspaceUpdateSerializer,
        responses=WorkspaceSerializer,
    )
    def patch(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        serializer = WorkspaceUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        workspace = workspace_service.patch(
            workspace, serializer.validated_data, principal_name(request), self.check_preconditions
        )
        return resource_response(WorkspaceSerializer, workspace)

    @extend_schema(
        operation_id="Workspaces_Delete",
        responses=DELETED,
    )
    def delete(self, request, subscriptionId, resourceGroupName, workspaceName):
        workspace = workspace_service.find(subscriptionId, resourceGroupName, workspaceName)
        if workspace is None:
            return Response(status=204)
        workspace_service.delete(workspace, self.check_preconditions)
        return Response(status=200)
