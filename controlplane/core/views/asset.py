"""Models, environments and codes: containers and versions, all synchronous."""

from __future__ import annotations

from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework.response import Response

from controlplane.arm.errors import bad_request, not_found
from controlplane.arm.filters import filter_tags
from controlplane.arm.pagination import page
from controlplane.arm.responses import resource_response
from controlplane.arm.schema import DELETED, paged
from controlplane.arm.views import ArmView
from controlplane.core import names
from controlplane.core.choices import ListViewType
from controlplane.core.services import asset as asset_service
from controlplane.core.services.asset import AssetKind
from controlplane.core.views.lookups import get_workspace, principal_name


def _by_view_type(queryset, request):
    view_type = request.query_params.get("listViewType", ListViewType.ACTIVE_ONLY)
    if view_type not in ListViewType.values:
        raise bad_request(
            f"listViewType must be one of {', '.join(ListViewType.values)}.", "listViewType"
        )
    if view_type == ListViewType.ACTIVE_ONLY:
        return queryset.filter(is_archived=False)
    if view_type == ListViewType.ARCHIVED_ONLY:
        return queryset.filter(is_archived=True)
    return queryset


class AssetView(ArmView):
    kind: AssetKind

    def container(self, workspace, name: str):
        container = self.kind.container_model.objects.filter(
            workspace=workspace, name__iexact=name
        ).first()
        if container is None:
            raise not_found(self.kind.label, name)
        return container


class AssetContainerListView(AssetView):
    def get(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        queryset = self.kind.container_model.objects.filter(workspace=workspace).select_related(
            "workspace"
        )
        queryset = _by_view_type(queryset, request).order_by("name")
        return Response(page(request, queryset, lambda c: self.kind.container_serializer(c).data))


class AssetContainerView(AssetView):
    def get(self, request, **kwargs):
        container = self.container(get_workspace(kwargs), kwargs["name"])
        return resource_response(self.kind.container_serializer, container)

    def put(self, request, **kwargs):
        names.check_asset_name(kwargs["name"])
        workspace = get_workspace(kwargs)
        serializer = self.kind.container_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        container, created = asset_service.put_container(
            self.kind,
            workspace,
            kwargs["name"],
            serializer.validated_data,
            principal_name(request),
            self.check_preconditions,
        )
        return resource_response(
            self.kind.container_serializer, container, status=201 if created else 200
        )

    def delete(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        container = self.kind.container_model.objects.filter(
            workspace=workspace, name__iexact=kwargs["name"]
        ).first()
        if container is None:
            return Response(status=204)
        self.check_preconditions(container.etag)
        container.delete()
        return Response(status=200)


class AssetVersionListView(AssetView):
    def get(self, request, **kwargs):
        container = self.container(get_workspace(kwargs), kwargs["name"])
        queryset = self.kind.version_model.objects.filter(container=container).select_related(
            "container__workspace"
        )
        if version := request.query_params.get("version"):
            queryset = queryset.filter(name__iexact=version)
        # Azure's SDK looks a code directory up by its content hash before uploading it.
        if content_hash := request.query_params.get("hash"):
            queryset = queryset.filter(properties__hash_sha256=content_hash)
            if hash_version := request.query_params.get("hashVersion"):
                queryset = queryset.filter(properties__hash_version=hash_version)
        queryset = filter_tags(_by_view_type(queryset, request), request.query_params.get("tags"))
        order = request.query_params.get("$orderBy", "createdtime desc").lower()
        queryset = queryset.order_by("created_at" if order.endswith("asc") else "-created_at")
        return Response(page(request, queryset, lambda v: self.kind.version_serializer(v).data))


class AssetVersionView(AssetView):
    def get(self, request, **kwargs):
        container = self.container(get_workspace(kwargs), kwargs["name"])
        version = container.versions.filter(name__iexact=kwargs["version"]).first()
        if version is None:
            raise not_found(f"{self.kind.label} version", f"{container.name}:{kwargs['version']}")
        return resource_response(self.kind.version_serializer, version)

    def put(self, request, **kwargs):
        names.check_asset_name(kwargs["name"])
        names.check_asset_version(kwargs["version"])
        workspace = get_workspace(kwargs)
        serializer = self.kind.version_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version, created = asset_service.put_version(
            self.kind,
            workspace,
            kwargs["name"],
            kwargs["version"],
            serializer.validated_data,
            principal_name(request),
            self.check_preconditions,
        )
        return resource_response(
            self.kind.version_serializer, version, status=201 if created else 200
        )

    def delete(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        container = self.kind.container_model.objects.filter(
            workspace=workspace, name__iexact=kwargs["name"]
        ).first()
        version = (
            container.versions.filter(name__iexact=kwargs["version"]).first() if container else None
        )
        if version is None:
            return Response(status=204)
        self.check_preconditions(version.etag)
        version.delete()
        return Response(status=200)


def views_for(kind: AssetKind) -> dict[str, type]:
    """The four view classes of one asset kind, each with Azure's operation ids."""
    containers, versions = f"{kind.label}Containers", f"{kind.label}Versions"
    cs, vs = kind.container_serializer, kind.version_serializer
    list_params = [
        OpenApiParameter("$skip", str),
        OpenApiParameter("count", int),
        OpenApiParameter("listViewType", str, enum=ListViewType.values),
    ]
    version_params = [
        OpenApiParameter("$orderBy", str),
        OpenApiParameter("$top", int),
        OpenApiParameter("$skip", str),
        OpenApiParameter("version", str),
        OpenApiParameter("tags", str),
        OpenApiParameter("hash", str),
        OpenApiParameter("hashVersion", str),
        OpenApiParameter("listViewType", str, enum=ListViewType.values),
    ]

    def make(base, name, **methods):
        return extend_schema_view(**methods)(
            type(f"{kind.label}{name}", (base,), {"kind": kind, "__module__": __name__})
        )

    return {
        "containers": make(
            AssetContainerListView,
            "ContainerListView",
            get=extend_schema(
                operation_id=f"{containers}_List", parameters=list_params, responses=paged(cs)
            ),
        ),
        "container": make(
            AssetContainerView,
            "ContainerView",
            get=extend_schema(operation_id=f"{containers}_Get", responses=cs),
            put=extend_schema(
                operation_id=f"{containers}_CreateOrUpdate",
                request=cs,
                responses={200: cs, 201: cs},
            ),
            delete=extend_schema(operation_id=f"{containers}_Delete", responses=DELETED),
        ),
        "versions": make(
            AssetVersionListView,
            "VersionListView",
            get=extend_schema(
                operation_id=f"{versions}_List", parameters=version_params, responses=paged(vs)
            ),
        ),
        "version": make(
            AssetVersionView,
            "VersionView",
            get=extend_schema(operation_id=f"{versions}_Get", responses=vs),
            put=extend_schema(
                operation_id=f"{versions}_CreateOrUpdate", request=vs, responses={200: vs, 201: vs}
            ),
            delete=extend_schema(operation_id=f"{versions}_Delete", responses=DELETED),
        ),
    }
