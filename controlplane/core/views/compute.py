"""Computes: Kubernetes clusters attached to a workspace (synchronous writes)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from controlplane.arm.errors import not_found
from controlplane.arm.pagination import page
from controlplane.arm.responses import resource_response
from controlplane.arm.schema import DELETED, paged
from controlplane.arm.views import ArmView
from controlplane.core.models import Compute
from controlplane.core.serializers.compute import ComputeResourceSerializer
from controlplane.core.services import compute as compute_service
from controlplane.core.views.lookups import get_workspace, principal_name


def _find(workspace, name: str) -> Compute | None:
    return (
        Compute.objects.select_related("workspace")
        .filter(workspace=workspace, name__iexact=name)
        .first()
    )


class ComputeListView(ArmView):
    @extend_schema(
        operation_id="Compute_List",
        parameters=[OpenApiParameter("$skip", str)],
        responses=paged(ComputeResourceSerializer),
    )
    def get(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        computes = Compute.objects.select_related("workspace").filter(workspace=workspace)
        return Response(
            page(
                request,
                computes.order_by("created_at"),
                lambda c: ComputeResourceSerializer(c).data,
            )
        )


class ComputeView(ArmView):
    @extend_schema(operation_id="Compute_Get", responses=ComputeResourceSerializer)
    def get(self, request, **kwargs):
        compute = _find(get_workspace(kwargs), kwargs["computeName"])
        if compute is None:
            raise not_found("Compute", kwargs["computeName"])
        return resource_response(ComputeResourceSerializer, compute)

    @extend_schema(
        operation_id="Compute_CreateOrUpdate",
        request=ComputeResourceSerializer,
        responses={200: ComputeResourceSerializer, 201: ComputeResourceSerializer},
    )
    def put(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        serializer = ComputeResourceSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        existing = _find(workspace, kwargs["computeName"])
        compute, created = compute_service.create_or_update(
            workspace,
            existing.name if existing else kwargs["computeName"],
            serializer.validated_data,
            principal_name(request),
            self.check_preconditions,
        )
        return resource_response(ComputeResourceSerializer, compute, status=201 if created else 200)

    @extend_schema(
        operation_id="Compute_Delete",
        parameters=[OpenApiParameter("underlyingResourceAction", str)],
        responses=DELETED,
    )
    def delete(self, request, **kwargs):
        compute = _find(get_workspace(kwargs), kwargs["computeName"])
        if compute is None:
            return Response(status=204)
        compute_service.delete(compute, self.check_preconditions)
        return Response(status=200)
