"""The operation-status resource that Azure-AsyncOperation points at."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from controlplane.arm.responses import PROVIDER
from controlplane.arm.schema import ErrorDetailSerializer
from controlplane.core.choices import OperationStatus


class OperationStatusSerializer(serializers.Serializer):
    id = serializers.SerializerMethodField()
    name = serializers.CharField(source="pk")
    resourceId = serializers.CharField(source="resource_id")
    status = serializers.ChoiceField(choices=OperationStatus.choices)
    startTime = serializers.DateTimeField(source="started_at")
    endTime = serializers.DateTimeField(source="ended_at", allow_null=True)
    percentComplete = serializers.FloatField(source="percent_complete")
    error = ErrorDetailSerializer(allow_null=True, required=False)

    @extend_schema_field(OpenApiTypes.STR)
    def get_id(self, obj) -> str:
        return (
            f"/subscriptions/{obj.subscription_id}/providers/{PROVIDER}/locations/{obj.location}"
            f"/mfeOperationsStatus/{obj.pk}"
        )

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if data.get("error") is None:
            data.pop("error", None)
        return data
