"""SDK v1's web services on model management (``modelmanagement/v1.0/.../services``), their
operations, the validate calls, and the compute GET under ``rp/workspaces`` that
``ComputeTarget(ws, name)`` makes. Errors are ModelErrorResponse, as for models."""

from __future__ import annotations

import logging

import redis
from celery.exceptions import TimeoutError as CeleryTimeoutError
from django.conf import settings
from drf_spectacular.utils import extend_schema
from kombu.exceptions import OperationalError as BrokerError
from rest_framework.exceptions import APIException
from rest_framework.response import Response

from controlplane import tasks
from controlplane.arm.responses import api_url
from controlplane.arm.views import principal_name
from controlplane.core.models import OnlineEndpoint
from controlplane.core.services import compute as compute_service
from controlplane.core.services import endpoint as endpoint_service
from controlplane.core.views.lookups import get_workspace
from controlplane.v1 import webservices
from controlplane.v1.models import ServiceOperation
from controlplane.v1.services import V1Error
from controlplane.v1.views import ModelManagementView, model_management_exception_handler

log = logging.getLogger(__name__)


def mms_base(request, workspace) -> str:
    return api_url(request, f"/modelmanagement/v1.0{workspace.arm_id}")


def accepted(request, workspace, operation: ServiceOperation) -> Response:
    """202 with Operation-Location, which the SDK polls (or reads the id from)."""
    location = f"{mms_base(request, workspace)}/operations/{operation.pk}"
    return Response(status=202, headers={"Operation-Location": location})


def get_service(kwargs) -> OnlineEndpoint:
    workspace = get_workspace(kwargs)
    endpoint = endpoint_service.find(workspace, kwargs["name"])
    if endpoint is None or endpoint.provisioning_state == "Deleting":
        raise webservices.not_found(kwargs["name"])
    return endpoint


@extend_schema(exclude=True)
class ServiceListView(ModelManagementView):
    def post(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        operation = webservices.create(workspace, request.data, principal_name(request))
        return accepted(request, workspace, operation)

    def get(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        params = request.query_params
        endpoints = (
            OnlineEndpoint.objects.filter(workspace=workspace)
            .exclude(provisioning_state="Deleting")
            .select_related("workspace", "v1")
            .order_by("created_at", "name")
        )
        services = [webservices.dto(endpoint) for endpoint in endpoints]
        if params.get("computeType"):
            wanted = params["computeType"].upper()
            services = [s for s in services if s["computeType"] == wanted]
        if params.get("modelName") or params.get("modelId"):
            services = [s for s in services if uses_model(s, params)]
        for tag in filter(None, (params.get("tags") or "").split(",")):
            key, _, value = tag.partition("=")
            services = [
                s
                for s in services
                if key in (s["kvTags"] or {}) and (not value or s["kvTags"][key] == value)
            ]
        # No nextLink key at all: the SDK follows one that is there, even null.
        return Response({"value": services})


def uses_model(service: dict, params) -> bool:
    versions = service.get("versions") or {service["name"]: service}
    models = [m for version in versions.values() for m in version.get("models") or []]
    return any(
        (not params.get("modelName") or m["name"] == params["modelName"])
        and (not params.get("modelId") or m["id"] == params["modelId"])
        for m in models
    )


@extend_schema(exclude=True)
class ServiceView(ModelManagementView):
    def get(self, request, **kwargs):
        return Response(webservices.dto(get_service(kwargs)))

    def patch(self, request, **kwargs):
        endpoint = get_service(kwargs)
        operation = webservices.patch(endpoint, request.data, principal_name(request))
        return accepted(request, endpoint.workspace, operation)

    def delete(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        endpoint = endpoint_service.find(workspace, kwargs["name"])
        if endpoint is None:
            return Response(status=204)
        operation = webservices.delete(endpoint, principal_name(request))
        return accepted(request, workspace, operation)


@extend_schema(exclude=True)
class ListKeysView(ModelManagementView):
    def post(self, request, **kwargs):
        endpoint = get_service(kwargs)
        if endpoint.auth_mode != "Key":
            raise V1Error(400, "BadRequest", f"Service '{endpoint.name}' uses token auth.")
        return Response(
            {"primaryKey": endpoint.primary_key, "secondaryKey": endpoint.secondary_key}
        )


@extend_schema(exclude=True)
class RegenerateKeysView(ModelManagementView):
    def post(self, request, **kwargs):
        endpoint = get_service(kwargs)
        operation = webservices.regenerate_key(endpoint, request.data, principal_name(request))
        return accepted(request, endpoint.workspace, operation)


@extend_schema(exclude=True)
class TokenView(ModelManagementView):
    def post(self, request, **kwargs):
        endpoint = get_service(kwargs)
        return Response(webservices.token(endpoint, principal_name(request)))


@extend_schema(exclude=True)
class LogsView(ModelManagementView):
    """The default version's replica output (an AKS service has only the one)."""

    def get(self, request, **kwargs):
        endpoint = get_service(kwargs)
        deployment = webservices.default_deployment(endpoint)
        if deployment is None:
            return Response({"content": ""})
        tail = request.query_params.get("tail", "5000")
        try:
            content = tasks.call(
                tasks.DEPLOYMENT_LOGS,
                timeout=settings.WEIR_LOGS_TIMEOUT,
                deployment_id=str(deployment.id),
                tail=int(tail) if tail.isdigit() else 5000,
            )
        except (CeleryTimeoutError, BrokerError, redis.RedisError) as exc:
            log.warning("logs of %s unavailable: %s", deployment.arm_id, type(exc).__name__)
            raise V1Error(
                503, "ServiceUnavailable", "The replicas' logs are unavailable now."
            ) from None
        return Response({"content": content})


@extend_schema(exclude=True)
class OperationView(ModelManagementView):
    def get(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        operation = ServiceOperation.objects.filter(
            workspace=workspace, pk=webservices.uuid_or_none(kwargs["id"])
        ).first()
        if operation is None:
            raise V1Error(404, "NotFound", f"Operation '{kwargs['id']}' was not found.")
        return Response(webservices.operation_dto(operation, mms_base(request, workspace)))


@extend_schema(exclude=True)
class ValidateView(ModelManagementView):
    """The SDK's checks before a change: 200 with ``{}``, or with ``{error: {message}}``,
    which the SDK raises before it sends the change. The change checks again."""

    check = "request"

    def post(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        try:
            webservices.validate(
                workspace, self.check, kwargs, request.data, principal_name(request)
            )
        except (V1Error, APIException) as exc:
            refusal = model_management_exception_handler(exc, {"request": request})
            return Response({"error": refusal.data})
        return Response({})


@extend_schema(exclude=True)
class ComputeView(ModelManagementView):
    """An attached Kubernetes compute as SDK v1's AksCompute reads it."""

    def get(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        compute = compute_service.find(workspace, kwargs["computeName"])
        if compute is None:
            raise V1Error(404, "NotFound", f"Compute '{kwargs['computeName']}' was not found.")
        return Response(webservices.compute_dto(compute))
