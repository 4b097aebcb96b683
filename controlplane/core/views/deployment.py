"""Online deployments: asynchronous PUT/PATCH/DELETE, list, logs and SKUs."""

import logging

import redis
from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from kombu.exceptions import OperationalError as BrokerError
from rest_framework.response import Response

from controlplane import tasks
from controlplane.arm import pagination
from controlplane.arm.errors import ArmError
from controlplane.arm.filters import filter_tags
from controlplane.arm.pagination import page
from controlplane.arm.resources import ArmListView, ArmResourceView
from controlplane.arm.schema import paged
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
from controlplane.core.views.lookups import get_deployment, get_endpoint

log = logging.getLogger(__name__)


class OnlineDeploymentListView(ArmListView):
    serializer_class = OnlineDeploymentSerializer
    operation_id = "OnlineDeployments_List"
    list_parameters = [
        OpenApiParameter("$orderBy", str),
        pagination.TOP,
        pagination.SKIP,
    ]

    def rows(self):
        query = self.request.query_params
        endpoint = get_endpoint(self.kwargs)
        queryset = OnlineDeployment.objects.filter(endpoint=endpoint).select_related(
            "endpoint__workspace"
        )
        queryset = filter_tags(queryset, query.get("tags"))
        order = {
            "createdtime desc": "-created_at",
            "createdtime asc": "created_at",
            "createdat desc": "-created_at",
            "createdat asc": "created_at",
        }.get(query.get("$orderBy", "").lower(), "created_at")
        return queryset.order_by(order, "name")


class OnlineDeploymentView(ArmResourceView):
    serializer_class = OnlineDeploymentSerializer
    update_serializer_class = OnlineDeploymentUpdateSerializer
    long_running = True
    operation_group = "OnlineDeployments"
    label = "Online deployment"
    name_kwarg = "deploymentName"
    service = deployment_service

    name_rules = (names.DEPLOYMENT,)

    def parent(self):
        return get_endpoint(self.kwargs)

    def find(self, endpoint):
        return deployment_service.find(endpoint, self.resource_name)

    def serializer_context(self, endpoint) -> dict:
        return {"workspace": endpoint.workspace}


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
            except (BrokerError, redis.RedisError) as exc:
                # What Redis said stays in the log: the body says only that it failed.
                log.warning("logs of %s unavailable: Redis: %s", deployment.arm_id, exc)
                raise ArmError(
                    503,
                    "ServiceUnavailable",
                    "The replicas' logs are unavailable: the workers cannot be reached.",
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
        parameters=[pagination.COUNT, pagination.SKIP],
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
        return Response(page(request, skus, list))


class ScaleEventsView(ArmListView):
    """The autoscaler's decisions on the deployment, newest first, with their inputs."""

    serializer_class = ScaleEventSerializer
    operation_id = "OnlineDeployments_ListScaleEvents"
    list_parameters = [pagination.TOP, pagination.SKIP]

    def rows(self):
        deployment = get_deployment(self.kwargs)
        return deployment.scale_events.order_by("-decided_at", "-recorded_at")
