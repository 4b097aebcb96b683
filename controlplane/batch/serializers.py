"""Batch endpoints and deployments in ARM's shape (2024-04-01's BatchEndpoint and
BatchDeployment), and the job an invocation answers with."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from controlplane.arm.envelope import (
    ManagedServiceIdentitySerializer,
    ProvisioningStateMixin,
    TrackedResourceSerializer,
    string_map,
    tag_map,
)
from controlplane.arm.fields import IntegerField
from controlplane.arm.responses import api_url
from controlplane.batch.models import LoggingLevel, OutputAction
from controlplane.core import references
from controlplane.core.choices import AuthMode
from controlplane.core.serializers.deployment import (
    RunsAssetsMixin,
    check_runnable,
)
from controlplane.core.serializers.fields import (
    CaseInsensitiveChoiceField,
    DurationField,
    JsonDocumentSerializer,
)

INT32_MAX = 2**31 - 1


class BatchEndpointDefaultsSerializer(JsonDocumentSerializer):
    deploymentName = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=255
    )


class BatchEndpointPropertiesSerializer(ProvisioningStateMixin):
    authMode = CaseInsensitiveChoiceField(
        source="auth_mode",
        choices=[AuthMode.AAD_TOKEN],
        error_messages={"invalid_choice": "batch endpoints take authMode AADToken, not {input}"},
    )
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    properties = string_map(required=False, allow_null=True)
    keys = serializers.JSONField(required=False, allow_null=True, write_only=True)
    defaults = BatchEndpointDefaultsSerializer(required=False, allow_null=True, write_only=True)
    scoringUri = serializers.SerializerMethodField()
    swaggerUri = serializers.SerializerMethodField()

    def get_scoringUri(self, obj) -> str:
        return scoring_uri(self.context.get("request"), obj)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_swaggerUri(self, obj) -> str | None:
        return None

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["keys"] = None
        data["defaults"] = {"deploymentName": instance.default_deployment}
        return data

    def validate(self, attrs):
        defaults = attrs.pop("defaults", None) or {}
        attrs["default_deployment"] = defaults.get("deploymentName") or None
        return attrs


def scoring_uri(request, endpoint) -> str:
    """Where invocations are POSTed: Weir's API, on the host the client called."""
    return api_url(request, f"/batch{endpoint.arm_id}/jobs")


class BatchEndpointSerializer(TrackedResourceSerializer):
    resource_type = "Microsoft.MachineLearningServices/workspaces/batchEndpoints"

    sku = serializers.JSONField(required=False, allow_null=True, write_only=True)
    properties = BatchEndpointPropertiesSerializer(source="*")


class BatchEndpointUpdateSerializer(serializers.Serializer):
    """PATCH body (PartialMinimalTrackedResourceWithIdentity): tags replace, identity."""

    tags = tag_map(required=False, allow_null=True)
    identity = ManagedServiceIdentitySerializer(required=False, allow_null=True)


class AssetReferenceSerializer(JsonDocumentSerializer):
    """AssetReferenceBase: a model named by its ARM id (referenceType Id)."""

    referenceType = CaseInsensitiveChoiceField(
        choices=["Id", "DataPath", "OutputPath"],
    )
    assetId = serializers.CharField(required=False, allow_null=True, max_length=1024)

    def validate(self, attrs):
        if attrs["referenceType"] != "Id":
            raise serializers.ValidationError(
                {"referenceType": [f"only Id references are taken, not {attrs['referenceType']}"]}
            )
        if not attrs.get("assetId"):
            raise serializers.ValidationError({"assetId": ["an Id reference names its asset"]})
        return attrs


class ResourceConfigurationSerializer(JsonDocumentSerializer):
    instanceCount = IntegerField(min_value=1, default=1)
    instanceType = serializers.CharField(required=False, allow_null=True, max_length=64)
    properties = serializers.DictField(required=False, allow_null=True)


class RetrySettingsSerializer(JsonDocumentSerializer):
    maxRetries = IntegerField(min_value=0, max_value=100, default=3)
    timeout = DurationField(min_seconds=1, max_seconds=7 * 24 * 3600, default="PT30S")


class DeploymentConfigurationSerializer(JsonDocumentSerializer):
    deploymentConfigurationType = CaseInsensitiveChoiceField(choices=["Model", "PipelineComponent"])

    def validate_deploymentConfigurationType(self, value):
        if value != "Model":
            raise serializers.ValidationError(
                "pipeline component deployments are not served; deploy a model"
            )
        return value


class OutputFileNameField(serializers.CharField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if "/" in value or "\\" in value or value in (".", ".."):
            raise serializers.ValidationError("a file name, without a folder")
        return value


class BatchDeploymentPropertiesSerializer(RunsAssetsMixin, ProvisioningStateMixin):
    model = AssetReferenceSerializer(required=False, allow_null=True)
    compute = serializers.CharField(max_length=1024)
    resources = ResourceConfigurationSerializer(required=False, allow_null=True)
    miniBatchSize = IntegerField(source="mini_batch_size", min_value=1, int64=True, default=10)
    maxConcurrencyPerInstance = IntegerField(
        source="max_concurrency_per_instance", min_value=1, max_value=64, default=1
    )
    outputAction = CaseInsensitiveChoiceField(
        source="output_action", choices=OutputAction.choices, default=OutputAction.APPEND_ROW
    )
    outputFileName = OutputFileNameField(
        source="output_file_name", max_length=255, default="predictions.csv"
    )
    retrySettings = RetrySettingsSerializer(
        source="retry_settings", required=False, allow_null=True
    )
    errorThreshold = IntegerField(
        source="error_threshold", min_value=-1, max_value=INT32_MAX, default=-1
    )
    loggingLevel = CaseInsensitiveChoiceField(
        source="logging_level", choices=LoggingLevel.choices, default=LoggingLevel.INFO
    )
    deploymentConfiguration = DeploymentConfigurationSerializer(
        required=False, allow_null=True, write_only=True
    )

    def to_representation(self, instance):
        data = super().to_representation(instance)
        # Azure answers the settings a PUT left out with the service's defaults.
        data["resources"] = {**RESOURCE_DEFAULTS, **(data.get("resources") or {})}
        data["retrySettings"] = {**RETRY_DEFAULTS, **(data.get("retrySettings") or {})}
        data["environmentVariables"] = data.get("environmentVariables") or {}
        data["properties"] = data.get("properties") or {}
        return data

    def validate_model(self, value):
        if value:
            try:
                references.resolve(self.context["workspace"], value["assetId"], "models")
            except ValueError as exc:
                raise serializers.ValidationError({"assetId": [str(exc)]}) from None
        return value

    def validate(self, attrs):
        attrs.pop("deploymentConfiguration", None)
        model = (attrs.get("model") or {}).get("assetId")
        if not model:
            raise serializers.ValidationError({"model": ["a batch deployment deploys a model"]})
        check_runnable(self.context["workspace"], attrs, model)
        return attrs


def _defaults(serializer_class) -> dict:
    serializer = serializer_class(data={})
    serializer.is_valid(raise_exception=True)
    return dict(serializer_class(serializer.validated_data).data)


RESOURCE_DEFAULTS = {**_defaults(ResourceConfigurationSerializer), "properties": {}}
RETRY_DEFAULTS = _defaults(RetrySettingsSerializer)


class BatchDeploymentSerializer(TrackedResourceSerializer):
    resource_type = "Microsoft.MachineLearningServices/workspaces/batchEndpoints/deployments"

    sku = serializers.JSONField(required=False, allow_null=True, write_only=True)
    properties = BatchDeploymentPropertiesSerializer(source="*")


class BatchDeploymentUpdatePropertiesSerializer(serializers.Serializer):
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True)


class BatchDeploymentUpdateSerializer(serializers.Serializer):
    """PATCH body (PartialBatchDeploymentPartialMinimalTrackedResourceWithProperties)."""

    tags = tag_map(required=False, allow_null=True)
    properties = BatchDeploymentUpdatePropertiesSerializer(required=False, allow_null=True)
