"""Models, environments, codes and data: containers and versions, all synchronous."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter

from controlplane.arm import pagination
from controlplane.arm.errors import bad_request, not_found
from controlplane.arm.filters import filter_tags
from controlplane.arm.resources import ArmListView, ArmResourceView
from controlplane.core import names
from controlplane.core.choices import ListViewType
from controlplane.core.services import asset as asset_service
from controlplane.core.services.asset import AssetKind
from controlplane.core.views.lookups import get_workspace


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


class AssetContainerListView(ArmListView):
    kind: AssetKind

    def rows(self):
        workspace = get_workspace(self.kwargs)
        containers = self.kind.container_model.objects.filter(workspace=workspace)
        queryset = containers.select_related("workspace").with_version_summary()
        return _by_view_type(queryset, self.request).order_by("name")


class AssetContainerView(ArmResourceView):
    kind: AssetKind
    name_kwarg = "name"
    service = asset_service

    name_rules = (names.ASSET,)

    def parent(self):
        return get_workspace(self.kwargs)

    def find(self, workspace):
        return asset_service.find_container(self.kind, workspace, self.resource_name)

    def create_or_update(self, workspace, data: dict, principal: str):
        return asset_service.put_container(
            self.kind, workspace, self.resource_name, data, principal, self.check_preconditions
        )


class AssetVersionListView(ArmListView):
    kind: AssetKind

    def rows(self):
        query = self.request.query_params
        workspace = get_workspace(self.kwargs)
        versions = self.kind.version_model.objects.select_related("container__workspace")
        if content_hash := query.get("hash"):
            # Azure's SDK looks a code directory up by its content hash before uploading it,
            # under a new name: as on Azure, the versions with that hash anywhere in the
            # workspace answer (the SDK takes name and version from their ids), or none.
            queryset = versions.filter(
                container__workspace=workspace, properties__hash_sha256=content_hash
            )
            if hash_version := query.get("hashVersion"):
                queryset = queryset.filter(properties__hash_version=hash_version)
        else:
            container = asset_service.find_container(self.kind, workspace, self.kwargs["name"])
            if container is None:
                raise not_found(self.kind.label, self.kwargs["name"])
            queryset = versions.filter(container=container)
        if version := query.get("version"):
            queryset = queryset.filter(name__lower=version.lower())
        queryset = filter_tags(
            _by_view_type(queryset, self.request), query.get(self.kind.tags_parameter)
        )
        order = query.get("$orderBy", "createdtime desc").lower()
        return queryset.order_by("created_at" if order.endswith("asc") else "-created_at")


class AssetVersionView(ArmResourceView):
    """A version, under a container that its PUT creates when missing."""

    kind: AssetKind
    name_kwarg = "version"
    service = asset_service

    name_rules = (names.ASSET, names.ASSET_VERSION)

    def parent(self):
        return get_workspace(self.kwargs)

    def find(self, workspace):
        container = asset_service.find_container(self.kind, workspace, self.kwargs["name"])
        return asset_service.find_version(container, self.resource_name) if container else None

    def get_row(self, workspace):
        container = asset_service.find_container(self.kind, workspace, self.kwargs["name"])
        if container is None:
            raise not_found(self.kind.label, self.kwargs["name"])
        version = asset_service.find_version(container, self.resource_name)
        if version is None:
            name = f"{container.name}:{self.resource_name}"
            raise not_found(f"{self.kind.label} version", name)
        return version

    def create_or_update(self, workspace, data: dict, principal: str):
        return asset_service.put_version(
            self.kind,
            workspace,
            self.kwargs["name"],
            self.resource_name,
            data,
            principal,
            self.check_preconditions,
        )


def views_for(kind: AssetKind) -> dict[str, type]:
    """The four view classes of one asset kind, each with Azure's operation ids."""
    containers, versions = f"{kind.label}Containers", f"{kind.label}Versions"

    def make(base, name, **attributes):
        attributes.update(kind=kind, __module__=__name__)
        return type(f"{kind.label}{name}", (base,), attributes)

    return {
        "containers": make(
            AssetContainerListView,
            "ContainerListView",
            serializer_class=kind.container_serializer,
            operation_id=f"{containers}_List",
            list_parameters=[
                pagination.SKIP,
                pagination.COUNT,
                OpenApiParameter("listViewType", str, enum=ListViewType.values),
            ],
        ),
        "container": make(
            AssetContainerView,
            "ContainerView",
            serializer_class=kind.container_serializer,
            operation_group=containers,
            label=kind.label,
        ),
        "versions": make(
            AssetVersionListView,
            "VersionListView",
            serializer_class=kind.version_serializer,
            operation_id=f"{versions}_List",
            list_parameters=[
                OpenApiParameter("$orderBy", str),
                pagination.TOP,
                pagination.SKIP,
                OpenApiParameter("version", str),
                OpenApiParameter(kind.tags_parameter, str),
                OpenApiParameter("hash", str),
                OpenApiParameter("hashVersion", str),
                OpenApiParameter("listViewType", str, enum=ListViewType.values),
            ],
        ),
        "version": make(
            AssetVersionView,
            "VersionView",
            serializer_class=kind.version_serializer,
            operation_group=versions,
            label=f"{kind.label} version",
        ),
    }
