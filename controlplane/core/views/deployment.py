"""Online deployments: asynchronous PUT/PATCH/DELETE, list, logs and SKUs."""

import logging

from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from controlplane import tasks
from controlplane.arm.errors import ArmError
from controlplane.arm.filters import filter_tags
from controlplane.arm.pagination import page
from controlplane.arm.responses import accepted_response, put_response, resource_response
from controlplane.arm.schema import ACCEPTED, ASYNC_DELETE, paged
from controlplane.arm.views import ArmView
from controlplane.core import names
from controlplane.core.choices import ContainerType
from controlplane.core.models import OnlineDeployment
from controlplane.core.serializers.deployment import (
    DeploymentLogsRequestSerializer,
    DeploymentLogsSerializer,
    OnlineDeploymentSerializer,
    OnlineDeploymentUpdateSerializer,
    ScaleEventSerializer,
    SkuResourceSerializer,
)
from controlplane.core.services import deployment as deployment_service
from controlplane.core.services import logs
from controlplane.core.views.lookups import get_deployment, get_endpoint, principal_name

log = logging.getLogger(__name__)


def _body(deployment) -> dict:
    return OnlineDeploymentSerializer(deployment).data


class OnlineDeploymentListView(ArmView):
    @extend_schema(
        operation_id="OnlineDeployments_List",
        parameters=[
            OpenApiParameter("$orderBy", str),
            OpenApiParameter("$top", int),
            OpenApiParameter("$skip", str),
        ],
        responses=paged(OnlineDeploymentSerializer),
    )
    def get(self, request, **kwargs):
        endpoint = get_endpoint(kwargs)
        queryset = OnlineDeployment.objects.filter(endpoint=endpoint).select_related(
            "endpoint__workspace"
        )
        queryset = filter_tags(queryset, request.query_params.get("tags"))
        order = {
            "createdtime desc": "-created_at",
            "createdtime asc": "created_at",
            "createdat desc": "-created_at",
            "createdat asc": "created_at",
        }.get(request.query_params.get("$orderBy", "").lower(), "created_at")
        return Response(page(request, queryset.order_by(order, "name"), _body))


class OnlineDeploymentView(ArmView):
    @extend_schema(operation_id="OnlineDeployments_Get", responses=OnlineDeploymentSerializer)
    def get(self, request, **kwargs):
        return resource_response(OnlineDeploymentSerializer, get_deployment(kwargs))

    @extend_schema(
        operation_id="OnlineDeployments_CreateOrUpdate",
        request=OnlineDeploymentSerializer,
        responses={200: OnlineDeploymentSerializer, 201: OnlineDeploymentSerializer},
    )
    def put(self, request, **kwargs):
        names.check_deployment_name(kwargs["deploymentName"])
        endpoint = get_endpoint(kwargs)
        serializer = OnlineDeploymentSerializer(
            data=request.data, context={"workspace": endpoint.workspace}
        )
        serializer.is_valid(raise_exception=True)
        existing = endpoint.deployments.filter(name__iexact=kwargs["deploymentName"]).first()
        deployment, created, operation = deployment_service.create_or_update(
            endpoint,
            existing.name if existing else kwargs["deploymentName"],
            serializer.validated_data,
            principal_name(request),
            self.check_preconditions,
        )
        return put_response(
            request, _body(deployment), created=created, operation=operation, etag=deployment.etag
        )

    @extend_schema(
        operation_id="OnlineDeployments_Update",
        request=OnlineDeploymentUpdateSerializer,
        responses={200: OnlineDeploymentSerializer, 202: ACCEPTED},
    )
    def patch(self, request, **kwargs):
        deployment = get_deployment(kwargs)
        serializer = OnlineDeploymentUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        operation = deployment_service.patch(
            deployment, serializer.validated_data, principal_name(request), self.check_preconditions
        )
        if operation is not None:
            return accepted_response(request, operation)
        return resource_response(OnlineDeploymentSerializer, get_deployment(kwargs))

    @extend_schema(
        operation_id="OnlineDeployments_Delete",
        responses=ASYNC_DELETE,
    )
    def delete(self, request, **kwargs):
        endpoint = get_endpoint(kwargs)
        deployment = endpoint.deployments.filter(name__iexact=kwargs["deploymentName"]).first()
        if deployment is None:
            return Response(status=204)
        operation = deployment_service.delete(
            deployment, principal_name(request), self.check_preconditions
        )
        return accepted_response(request, operation)


class GetLogsView(ArmView):
    @extend_schema(
        operation_id="OnlineDeployments_GetLogs",
        request=DeploymentLogsRequestSerializer,
        responses=DeploymentLogsSerializer,
    )
    def post(self, request, **kwargs):
        deployment = get_deployment(kwargs)
        serializer = DeploymentLogsRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data["containerType"] == ContainerType.INFERENCE_SERVER:
            # The replicas' output lives where they run: a worker reads it from the backend.
            try:
                content = tasks.call(
                    tasks.DEPLOYMENT_LOGS,
                    timeout=settings.WEIR_LOGS_TIMEOUT,
                    deployment_id=str(deployment.id),
                    tail=data.get("tail"),
                )
            except CeleryTimeoutError:
                raise ArmError(
                    503,
                    "ServiceUnavailable",
                    "The replicas' logs are unavailable: no worker answered within "
                    f"{settings.WEIR_LOGS_TIMEOUT:g}s.",
                ) from None
            except Exception as exc:  # the cluster unreachable or refusing: say so, no 500
                log.warning("logs of %s unavailable: %s", deployment.arm_id, exc)
                raise ArmError(
                    503, "ServiceUnavailable", f"The replicas' logs are unavailable: {exc}"
                ) from None
        else:
            content = logs.tail(deployment.id, data["containerType"], data.get("tail"))
        return Response({"content": content})


class SkusView(ArmView):
    @extend_schema(
        operation_id="OnlineDeployments_ListSkus",
        parameters=[OpenApiParameter("count", int), OpenApiParameter("$skip", str)],
        responses=paged(SkuResourceSerializer),
    )
    def get(self, request, **kwargs):
        get_deployment(kwargs)
        skus = [
            {
                "resourceType": OnlineDeploymentSerializer.resource_type,
                "sku": {"name": "Default", "tier": "Standard"},
                "capacity": {
                    "minimum": 1,
                    "maximum": settings.WEIR_MAX_INSTANCES_PER_DEPLOYMENT,
                    "default": 1,
                    "scaleType": "Manual",
                },
            }
        ]
        return Response(page(request, skus, lambda sku: sku))


class ScaleEventsView(ArmView):
    """The autoscaler's decisions on the deployment, newest first, with their inputs."""

    @extend_schema(
        operation_id="OnlineDeployments_ListScaleEvents",
        parameters=[OpenApiParameter("$top", int), OpenApiParameter("$skip", str)],
        responses=paged(ScaleEventSerializer),
    )
    def get(self, request, **kwargs):
        deployment = get_deployment(kwargs)
        events = deployment.scale_events.order_by("-decided_at", "-recorded_at")
        return Response(page(request, events, lambda e: ScaleEventSerializer(e).data))
