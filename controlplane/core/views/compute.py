"""Computes: Kubernetes clusters attached to a workspace (synchronous writes)."""

from drf_spectacular.utils import OpenApiParameter

from controlplane.arm import pagination
from controlplane.arm.resources import ArmListView, ArmResourceView
from controlplane.core import names
from controlplane.core.models import Compute
from controlplane.core.serializers.compute import ComputeResourceSerializer
from controlplane.core.services import compute as compute_service
from controlplane.core.views.lookups import get_workspace


class ComputeListView(ArmListView):
    serializer_class = ComputeResourceSerializer
    operation_id = "Compute_List"
    list_parameters = [pagination.SKIP]

    def rows(self):
        workspace = get_workspace(self.kwargs)
        computes = Compute.objects.select_related("workspace").filter(workspace=workspace)
        return computes.order_by("created_at")


class ComputeView(ArmResourceView):
    serializer_class = ComputeResourceSerializer
    operation_group = "Compute"
    delete_parameters = [OpenApiParameter("underlyingResourceAction", str)]
    label = "Compute"
    name_kwarg = "computeName"
    service = compute_service

    name_rules = (names.COMPUTE,)

    def parent(self):
        return get_workspace(self.kwargs)

    def find(self, workspace):
        return compute_service.find(workspace, self.resource_name)
