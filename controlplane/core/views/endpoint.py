"""Online endpoints: asynchronous PUT/DELETE, PATCH, list, keys and token."""

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from controlplane.arm.errors import ArmError
from controlplane.arm.filters import filter_tags
from controlplane.arm.pagination import page
from controlplane.arm.responses import accepted_response, put_response, resource_response
from controlplane.arm.schema import ACCEPTED, ASYNC_DELETE, paged
from controlplane.arm.views import ArmView
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
from controlplane.core.views.lookups import get_endpoint, get_workspace, principal_name


def _body(endpoint) -> dict:
    return OnlineEndpointSerializer(endpoint).data


class OnlineEndpointListView(ArmView):
    @extend_schema(
        operation_id="OnlineEndpoints_List",
        parameters=[
            OpenApiParameter("name", str),
            OpenApiParameter("computeType", str),
            OpenApiParameter("count", int),
            OpenApiParameter("$skip", str),
            OpenApiParameter("tags", str),
            OpenApiParameter(
                "orderBy",
                str,
                enum=["CreatedAtDesc", "CreatedAtAsc", "UpdatedAtDesc", "UpdatedAtAsc"],
            ),
        ],
        responses=paged(OnlineEndpointSerializer),
    )
    def get(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        queryset = OnlineEndpoint.objects.filter(workspace=workspace).select_related("workspace")
        if name := request.query_params.get("name"):
            queryset = queryset.filter(name__iexact=name)
        if compute_type := request.query_params.get("computeType"):
            queryset = queryset.filter(
                deployments__endpoint_compute_type__iexact=compute_type
            ).distinct()
        queryset = filter_tags(queryset, request.query_params.get("tags"))
        order = {
            "CreatedAtDesc": "-created_at",
            "CreatedAtAsc": "created_at",
            "UpdatedAtDesc": "-modified_at",
            "UpdatedAtAsc": "modified_at",
        }.get(request.query_params.get("orderBy", ""), "created_at")
        return Response(page(request, queryset.order_by(order, "name"), _body))


class OnlineEndpointView(ArmView):
    @extend_schema(operation_id="OnlineEndpoints_Get", responses=OnlineEndpointSerializer)
    def get(self, request, **kwargs):
        return resource_response(OnlineEndpointSerializer, get_endpoint(kwargs))

    @extend_schema(
        operation_id="OnlineEndpoints_CreateOrUpdate",
        request=OnlineEndpointSerializer,
        responses={200: OnlineEndpointSerializer, 201: OnlineEndpointSerializer},
    )
    def put(self, request, **kwargs):
        names.check_endpoint_name(kwargs["endpointName"])
        workspace = get_workspace(kwargs)
        existing = OnlineEndpoint.objects.filter(
            workspace=workspace, name__iexact=kwargs["endpointName"]
        ).first()
        deployment_names = (
            list(existing.deployments.values_list("name", flat=True)) if existing else []
        )
        serializer = OnlineEndpointSerializer(
            data=request.data, context={"deployment_names": deployment_names}
        )
        serializer.is_valid(raise_exception=True)
        endpoint, created, operation = endpoint_service.create_or_update(
            workspace,
            existing.name if existing else kwargs["endpointName"],
            serializer.validated_data,
            principal_name(request),
            self.check_preconditions,
        )
        return put_response(
            request, _body(endpoint), created=created, operation=operation, etag=endpoint.etag
        )

    @extend_schema(
        operation_id="OnlineEndpoints_Update",
        request=OnlineEndpointUpdateSerializer,
        responses={200: OnlineEndpointSerializer, 202: ACCEPTED},
    )
    def patch(self, request, **kwargs):
        endpoint = get_endpoint(kwargs)
        serializer = OnlineEndpointUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        endpoint_service.patch(
            endpoint, serializer.validated_data, principal_name(request), self.check_preconditions
        )
        return resource_response(OnlineEndpointSerializer, get_endpoint(kwargs))

    @extend_schema(
        operation_id="OnlineEndpoints_Delete",
        responses=ASYNC_DELETE,
    )
    def delete(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        endpoint = OnlineEndpoint.objects.filter(
            workspace=workspace, name__iexact=kwargs["endpointName"]
        ).first()
        if endpoint is None:
            return Response(status=204)
        operation = endpoint_service.delete(
            endpoint, principal_name(request), self.check_preconditions
        )
        return accepted_response(request, operation)


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
