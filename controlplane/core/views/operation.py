"""Operation status (Azure-AsyncOperation) and operation result (Location) resources."""

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from controlplane.arm.errors import error_body, not_found
from controlplane.arm.responses import result_url
from controlplane.arm.views import ArmView
from controlplane.core.choices import OperationKind, OperationStatus
from controlplane.core.models import OnlineDeployment, OnlineEndpoint, Operation
from controlplane.core.serializers.deployment import OnlineDeploymentSerializer
from controlplane.core.serializers.endpoint import OnlineEndpointSerializer
from controlplane.core.serializers.operation import OperationStatusSerializer


def get_operation(kwargs) -> Operation:
    operation = Operation.objects.filter(
        pk=_uuid_or_none(kwargs["operationId"]),
        subscription_id__lower=kwargs["subscriptionId"].lower(),
    ).first()
    if operation is None:
        raise not_found("Operation", kwargs["operationId"])
    return operation


def _uuid_or_none(value: str):
    import uuid

    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class OperationStatusView(ArmView):
    @extend_schema(operation_id="OperationsStatus_Get", responses=OperationStatusSerializer)
    def get(self, request, **kwargs):
        """Always 200 while the operation exists: the body's status says how it went."""
        return Response(OperationStatusSerializer(get_operation(kwargs)).data)


class OperationResultView(ArmView):
    @extend_schema(
        operation_id="OperationResults_Get",
        responses={
            200: OpenApiResponse(description="Finished; the body is the resource, if any."),
            202: OpenApiResponse(description="Still running."),
            204: OpenApiResponse(description="Finished; nothing to return (a delete)."),
        },
    )
    def get(self, request, **kwargs):
        """202 while running; then what the synchronous call would have answered."""
        operation = get_operation(kwargs)
        if operation.status == OperationStatus.IN_PROGRESS:
            response = Response(status=202)
            response["Location"] = result_url(request, operation)
            response["Retry-After"] = str(settings.WEIR_RETRY_AFTER)
            return response
        if operation.status != OperationStatus.SUCCEEDED:
            error = operation.error or {
                "code": operation.status,
                "message": "The operation did not succeed.",
            }
            return Response(
                error_body(
                    error.get("code", "OperationFailed"),
                    error.get("message", ""),
                    error.get("target"),
                    error.get("details"),
                ),
                status=409 if operation.status == OperationStatus.CANCELED else 400,
            )
        if operation.result_status == 204:
            return Response(status=204)
        return Response(_resource_body(operation), status=200)


def _resource_body(operation: Operation):
    if operation.kind in (
        OperationKind.CREATE_OR_UPDATE_DEPLOYMENT,
        OperationKind.UPDATE_DEPLOYMENT,
        OperationKind.SCALE_DEPLOYMENT,
    ):
        deployment = (
            OnlineDeployment.objects.filter(pk=operation.deployment_id)
            .select_related("endpoint__workspace")
            .first()
        )
        return OnlineDeploymentSerializer(deployment).data if deployment else None
    endpoint = (
        OnlineEndpoint.objects.filter(pk=operation.endpoint_id).select_related("workspace").first()
    )
    return OnlineEndpointSerializer(endpoint).data if endpoint else None
