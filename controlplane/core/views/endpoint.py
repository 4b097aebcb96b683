"""Online endpoints: asynchronous PUT/DELETE, PATCH, list, keys and token."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from controlplane.arm import pagination
from controlplane.arm.errors import ArmError
from controlplane.arm.filters import filter_tags
from controlplane.arm.resources import ArmListView, ArmResourceView
from controlplane.arm.views import ArmView, principal_name
from controlplane.core import names
from controlplane.core.choices import AuthMode
from controlplane.core.models import OnlineEndpoint
from controlplane.core.serializers.endpoint import (
    EndpointAuthKeysSerializer,
    EndpointAuthTokenSerializer,
    OnlineEndpointSerializer,
    OnlineEndpointUpdateSerializer,
    RegenerateKeysSerializer,
)
from controlplane.core.services import endpoint as endpoint_service
from controlplane.core.services import keys
from controlplane.core.views.lookups import get_endpoint, get_workspace


class OnlineEndpointListView(ArmListView):
    serializer_class = OnlineEndpointSerializer
    operation_id = "OnlineEndpoints_List"
    list_parameters = [
        OpenApiParameter("name", str),
        OpenApiParameter("computeType", str),
        pagination.COUNT,
        pagination.SKIP,
        OpenApiParameter("tags", str),
        OpenApiParameter(
            "orderBy",
            str,
            enum=["CreatedAtDesc", "CreatedAtAsc", "UpdatedAtDesc", "UpdatedAtAsc"],
        ),
    ]

    def rows(self):
        query = self.request.query_params
        workspace = get_workspace(self.kwargs)
        queryset = OnlineEndpoint.objects.filter(workspace=workspace).select_related("workspace")
        if name := query.get("name"):
            queryset = queryset.filter(name__lower=name.lower())
        if compute_type := query.get("computeType"):
            queryset = queryset.filter(
                deployments__endpoint_compute_type__iexact=compute_type
            ).distinct()
        queryset = filter_tags(queryset, query.get("tags"))
        order = {
            "CreatedAtDesc": "-created_at",
            "CreatedAtAsc": "created_at",
            "UpdatedAtDesc": "-modified_at",
            "UpdatedAtAsc": "modified_at",
        }.get(query.get("orderBy", ""), "created_at")
        return queryset.order_by(order, "name")


class OnlineEndpointView(ArmResourceView):
    serializer_class = OnlineEndpointSerializer
    update_serializer_class = OnlineEndpointUpdateSerializer
    long_running = True
    operation_group = "OnlineEndpoints"
    label = "Online endpoint"
    name_kwarg = "endpointName"
    service = endpoint_service

    name_rules = (names.ENDPOINT,)

    def parent(self):
        return get_workspace(self.kwargs)

    def find(self, workspace):
        return endpoint_service.find(workspace, self.resource_name)

    def serializer_context(self, workspace) -> dict:
        # Traffic may only name the endpoint's own deployments.
        existing = self.find(workspace)
        deployments = existing.deployments.values_list("name", flat=True) if existing else []
        return {"deployment_names": list(deployments)}


class ListKeysView(ArmView):
    @extend_schema(
        operation_id="OnlineEndpoints_ListKeys", request=None, responses=EndpointAuthKeysSerializer
    )
    def post(self, request, **kwargs):
        endpoint = get_endpoint(kwargs)
        return Response(
            {"primaryKey": endpoint.primary_key, "secondaryKey": endpoint.secondary_key}
        )


class RegenerateKeysView(ArmView):
    @extend_schema(
        operation_id="OnlineEndpoints_RegenerateKeys",
        request=RegenerateKeysSerializer,
        responses={200: OpenApiResponse(description="The key was replaced.")},
    )
    def post(self, request, **kwargs):
        endpoint = get_endpoint(kwargs)
        serializer = RegenerateKeysSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint_service.regenerate_key(
            endpoint,
            serializer.validated_data["keyType"],
            serializer.validated_data.get("keyValue"),
            serializer.validated_data.get("overlapSeconds") or 0,
        )
        return Response(status=200)


class TokenView(ArmView):
    @extend_schema(
        operation_id="OnlineEndpoints_GetToken", request=None, responses=EndpointAuthTokenSerializer
    )
    def post(self, request, **kwargs):
        endpoint = get_endpoint(kwargs)
        if endpoint.auth_mode != AuthMode.AML_TOKEN:
            raise ArmError(
                400,
                "BadArgument",
                f"Tokens are issued only for authMode AMLToken; endpoint '{endpoint.name}' "
                f"uses {endpoint.auth_mode}.",
                "authMode",
            )
        return Response(keys.issue_token(endpoint, principal_name(request)))
