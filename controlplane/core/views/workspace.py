"""Workspaces: synchronous create, read, update, delete and list."""

from django.db import transaction
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from controlplane.arm.errors import bad_request, conflict
from controlplane.arm.pagination import page
from controlplane.arm.responses import quote_etag
from controlplane.arm.schema import paged
from controlplane.arm.views import ArmView
from controlplane.core import names
from controlplane.core.models import Workspace
from controlplane.core.models.base import new_etag
from controlplane.core.serializers.workspace import WorkspaceSerializer, WorkspaceUpdateSerializer
from controlplane.core.services.rows import create_or_conflict
from controlplane.core.views.lookups import get_workspace, principal_name

WORKSPACE_FIELDS = ("tags", "kind", "identity", "sku", "friendly_name", "description", "settings")


def _values(data: dict) -> dict:
    values = {field: data.get(field) for field in WORKSPACE_FIELDS}
    values["tags"] = values["tags"] or {}
    values["settings"] = {k: v for k, v in (values["settings"] or {}).items() if v is not None}
    return values


def _response(workspace, status=200) -> Response:
    response = Response(WorkspaceSerializer(workspace).data, status=status)
    response["ETag"] = quote_etag(workspace.etag)
    return response


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
        return _response(get_workspace(kwargs))

    @extend_schema(
        operation_id="Workspaces_CreateOrUpdate",
        request=WorkspaceSerializer,
        responses={200: WorkspaceSerializer, 201: WorkspaceSerializer},
    )
    def put(self, request, subscriptionId, resourceGroupName, workspaceName):
        names.check_workspace_name(workspaceName, resourceGroupName)
        serializer = WorkspaceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data, principal = serializer.validated_data, principal_name(request)
        values = _values(data)
        with transaction.atomic():
            workspace = (
                Workspace.objects.select_for_update()
                .filter(
                    subscription_id__iexact=subscriptionId,
                    resource_group__iexact=resourceGroupName,
                    name__iexact=workspaceName,
                )
                .first()
            )
            self.check_preconditions(workspace.etag if workspace else None)
            if workspace is None:
                workspace = create_or_conflict(
                    Workspace,
                    subscription_id=subscriptionId,
                    resource_group=resourceGroupName,
                    name=workspaceName,
                    location=data["location"],
                    created_by=principal,
                    modified_by=principal,
                    **values,
                )
                return _response(workspace, status=201)
            if data["location"].lower() != workspace.location.lower():
                raise bad_request("location cannot change after creation.", "location")
            if any(getattr(workspace, f) != v for f, v in values.items()):
                for field, value in values.items():
                    setattr(workspace, field, value)
                workspace.etag = new_etag()
                workspace.modified_by = principal
                workspace.save()
        return _response(workspace)

    @extend_schema(
        operation_id="Workspaces_Update",
        request=WorkspaceUpdateSerializer,
        responses=WorkspaceSerializer,
    )
    def patch(self, request, **kwargs):
        serializer = WorkspaceUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with transaction.atomic():
            workspace = Workspace.objects.select_for_update().get(pk=get_workspace(kwargs).pk)
            self.check_preconditions(workspace.etag)
            if "tags" in data:
                workspace.tags = data["tags"] or {}
            if data.get("sku"):
                workspace.sku = {**(workspace.sku or {}), **data["sku"]}
            for field in ("friendly_name", "description"):
                if field in data:
                    setattr(workspace, field, data[field])
            if data.get("settings"):
                workspace.settings = {**workspace.settings, **data["settings"]}
            workspace.etag = new_etag()
            workspace.modified_by = principal_name(request)
            workspace.save()
        return _response(workspace)

    @extend_schema(
        operation_id="Workspaces_Delete",
        responses={
            200: OpenApiResponse(description="Deleted"),
            204: OpenApiResponse(description="Did not exist"),
        },
    )
    def delete(self, request, **kwargs):
        workspace = Workspace.objects.filter(
            subscription_id__iexact=kwargs["subscriptionId"],
            resource_group__iexact=kwargs["resourceGroupName"],
            name__iexact=kwargs["workspaceName"],
        ).first()
        if workspace is None:
            return Response(status=204)
        self.check_preconditions(workspace.etag)
        endpoints = list(workspace.online_endpoints.values_list("name", flat=True))
        if endpoints:
            raise conflict(
                f"Workspace '{workspace.name}' still has online endpoints "
                f"({', '.join(sorted(endpoints))}); delete them first.",
                "workspaceName",
            )
        workspace.delete()
        return Response(status=200)
