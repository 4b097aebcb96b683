"""Online deployment (onlineEndpoints/deployments), its logs and SKUs."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from controlplane.arm.envelope import (
    ProvisioningStateMixin,
    SkuSerializer,
    TrackedResourceSerializer,
    string_map,
    tag_map,
)
from controlplane.arm.fields import BooleanField, IntegerField
from controlplane.core import references
from controlplane.core.choices import (
    ContainerType,
    EndpointComputeType,
    PublicNetworkAccess,
    ScaleAction,
)
from controlplane.core.quantities import parse_quantity
from controlplane.core.serializers.fields import (
    DurationField,
    JsonDocumentSerializer,
    QuantityField,
)

# Azure's limit on request_timeout_ms for managed online endpoints.
MAX_REQUEST_TIMEOUT_SECONDS = 180


class CodeConfigurationSerializer(JsonDocumentSerializer):
    codeId = serializers.CharField(required=False, allow_null=True)
    scoringScript = serializers.RegexField(r"[a-zA-Z0-9_]", min_length=1, max_length=1024)

    def validate_scoringScript(self, value: str) -> str:
        # A path inside the code: "score.py", "onlinescoring/score.py".
        parts = value.replace("\\", "/").split("/")
        if value.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
            raise serializers.ValidationError(
                "the scoring script is a path relative to the code's root, inside it"
            )
        return value


class ProbeSettingsSerializer(JsonDocumentSerializer):
    failureThreshold = IntegerField(min_value=1, default=30)
    successThreshold = IntegerField(min_value=1, default=1)
    timeout = DurationField(min_seconds=1, default="PT2S")
    period = DurationField(min_seconds=1, default="PT10S")
    initialDelay = DurationField(min_seconds=0, required=False, allow_null=True)


class OnlineRequestSettingsSerializer(JsonDocumentSerializer):
    maxConcurrentRequestsPerInstance = IntegerField(min_value=1, default=1)
    requestTimeout = DurationField(
        min_seconds=0.001, max_seconds=MAX_REQUEST_TIMEOUT_SECONDS, default="PT5S"
    )
    maxQueueWait = DurationField(min_seconds=0, default="PT0.5S")


class SamplingRateField(serializers.FloatField):
    """A JSON number from 0 to 1 (a string or a boolean is refused, as for integers)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise serializers.ValidationError("must be a number from 0.0 to 1.0")
        return super().to_internal_value(data)


class DataCollectionSerializer(JsonDocumentSerializer):
    dataCollectionMode = serializers.ChoiceField(
        choices=["Enabled", "Disabled"], default="Disabled"
    )
    samplingRate = SamplingRateField(min_value=0.0, max_value=1.0, default=1.0)
    dataId = serializers.CharField(required=False, allow_null=True, max_length=1024)
    clientId = serializers.CharField(required=False, allow_null=True, max_length=1024)


class RequestLoggingSerializer(JsonDocumentSerializer):
    captureHeaders = serializers.ListField(
        child=serializers.CharField(max_length=256), required=False, allow_null=True
    )


class DataCollectorSerializer(JsonDocumentSerializer):
    """Azure's DataCollector. The collections request and response (or model_inputs and
    model_outputs) enabled make the replicas log scoring payloads; see
    dataplane.inference.collector."""

    collections = serializers.DictField(
        child=DataCollectionSerializer(allow_null=True), allow_empty=True
    )
    requestLogging = RequestLoggingSerializer(required=False, allow_null=True)
    rollingRate = serializers.ChoiceField(
        choices=["Year", "Month", "Day", "Hour", "Minute"], default="Hour"
    )


class OnlineScaleSettingsSerializer(JsonDocumentSerializer):
    scaleType = serializers.ChoiceField(choices=["Default", "TargetUtilization"])
    minInstances = IntegerField(min_value=0, required=False)
    maxInstances = IntegerField(min_value=1, required=False)
    pollingInterval = DurationField(min_seconds=1, required=False)
    targetUtilizationPercentage = IntegerField(min_value=1, max_value=100, required=False)
    # Beyond Azure: with minInstances 0, how long without a request before the last replica
    # stops (default PT5M); the router holds the next request while one starts again.
    scaleToZeroAfter = DurationField(min_seconds=1, required=False)

    def validate(self, attrs):
        if attrs["scaleType"] == "TargetUtilization":
            attrs.setdefault("minInstances", 1)
            attrs.setdefault("maxInstances", 1)
            attrs.setdefault("pollingInterval", "PT1S")
            attrs.setdefault("targetUtilizationPercentage", 70)
            if attrs["minInstances"] > attrs["maxInstances"]:
                raise serializers.ValidationError(
                    {"minInstances": ["minInstances cannot exceed maxInstances"]}
                )
        else:
            extra = set(attrs) - {"scaleType"}
            if extra:
                raise serializers.ValidationError(
                    {sorted(extra)[0]: ["only TargetUtilization scale settings take this field"]}
                )
        return attrs


class ResourceQuantitySerializer(JsonDocumentSerializer):
    cpu = QuantityField(required=False, allow_null=True)
    memory = QuantityField(required=False, allow_null=True)
    gpu = QuantityField(whole=True, required=False, allow_null=True)


class ContainerResourceRequirementsSerializer(JsonDocumentSerializer):
    containerResourceRequests = ResourceQuantitySerializer(required=False, allow_null=True)
    containerResourceLimits = ResourceQuantitySerializer(required=False, allow_null=True)

    def validate(self, attrs):
        """What Kubernetes refuses at apply, refused at PUT: a request over its limit, and
        GPUs requested other than as many as the limit (devices are not overcommitted)."""
        requests = attrs.get("containerResourceRequests") or {}
        limits = attrs.get("containerResourceLimits") or {}
        for resource in ("cpu", "memory", "gpu"):
            if not (requests.get(resource) and limits.get(resource)):
                continue
            request, limit = parse_quantity(requests[resource]), parse_quantity(limits[resource])
            if request > limit or (resource == "gpu" and request != limit):
                relation = "equal" if resource == "gpu" else "be at most"
                raise serializers.ValidationError(
                    {
                        "containerResourceRequests": {
                            resource: [
                                f"the {resource} request {requests[resource]} must {relation} "
                                f"the limit {limits[resource]}"
                            ]
                        }
                    }
                )
        return attrs


def _left_out(serializer_class, **given) -> dict:
    """The settings a PUT that leaves them out gets: what ``given`` (empty but for a required
    field) validates to with the serializer's defaults, as answered."""
    serializer = serializer_class(data=given)
    serializer.is_valid(raise_exception=True)
    return dict(serializer_class(serializer.validated_data).data)


# Settings a PUT left out are answered with the defaults the service uses (the swagger's),
# as Azure answers its server-side defaults: Azure's SDK builds its entities from them and
# does not accept null.
SERVER_DEFAULTS = {
    "livenessProbe": _left_out(ProbeSettingsSerializer),
    "readinessProbe": _left_out(ProbeSettingsSerializer),
    "requestSettings": _left_out(OnlineRequestSettingsSerializer),
    "scaleSettings": _left_out(OnlineScaleSettingsSerializer, scaleType="Default"),
}


class RunsAssetsMixin(serializers.Serializer):
    """What online and batch deployments share (EndpointDeploymentPropertiesBase): their
    description, properties, code, environment and its variables; the environment and code
    they name must resolve in the workspace (``context["workspace"]``)."""

    description = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    properties = string_map(required=False, allow_null=True)
    codeConfiguration = CodeConfigurationSerializer(
        source="code_configuration", required=False, allow_null=True
    )
    environmentId = serializers.CharField(
        source="environment_id", required=False, allow_null=True, max_length=1024
    )
    environmentVariables = string_map(
        source="environment_variables", required=False, allow_null=True
    )

    def _resolve(self, value, kind):
        if value is None:
            return None
        try:
            references.resolve(self.context["workspace"], value, kind)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def validate_environmentId(self, value):
        return self._resolve(value, "environments")

    def validate_codeConfiguration(self, value):
        if value and value.get("codeId"):
            try:
                references.resolve(self.context["workspace"], value["codeId"], "codes")
            except ValueError as exc:
                raise serializers.ValidationError({"codeId": [str(exc)]}) from None
        return value


class OnlineDeploymentPropertiesSerializer(RunsAssetsMixin, ProvisioningStateMixin):
    endpointComputeType = serializers.ChoiceField(
        source="endpoint_compute_type", choices=EndpointComputeType.choices
    )
    model = serializers.CharField(required=False, allow_null=True, max_length=1024)
    modelMountPath = serializers.CharField(
        source="model_mount_path", required=False, allow_null=True, max_length=1024
    )
    instanceType = serializers.CharField(
        source="instance_type", required=False, allow_null=True, max_length=64
    )
    appInsightsEnabled = BooleanField(source="app_insights_enabled", default=False)
    egressPublicNetworkAccess = serializers.ChoiceField(
        source="egress_public_network_access",
        choices=PublicNetworkAccess.choices,
        default=PublicNetworkAccess.ENABLED,
    )
    dataCollector = DataCollectorSerializer(
        source="data_collector", required=False, allow_null=True
    )
    livenessProbe = ProbeSettingsSerializer(
        source="liveness_probe", required=False, allow_null=True
    )
    readinessProbe = ProbeSettingsSerializer(
        source="readiness_probe", required=False, allow_null=True
    )
    requestSettings = OnlineRequestSettingsSerializer(
        source="request_settings", required=False, allow_null=True
    )
    scaleSettings = OnlineScaleSettingsSerializer(
        source="scale_settings", required=False, allow_null=True
    )
    containerResourceRequirements = ContainerResourceRequirementsSerializer(
        source="container_resource_requirements", required=False, allow_null=True
    )

    def to_representation(self, instance):
        data = super().to_representation(instance)
        for field, default in SERVER_DEFAULTS.items():
            if data.get(field) is None:
                data[field] = dict(default)
        return data

    def validate_model(self, value):
        return self._resolve(value, "models")

    def validate(self, attrs):
        check_runnable(self.context["workspace"], attrs, attrs.get("model"))
        return attrs


def check_runnable(workspace, attrs: dict, model: str | None) -> None:
    """A deployment (online or batch) runs a scoring script (codeConfiguration.codeId) in an
    environment (environmentId); an MLflow model may leave out both, and then runs with the
    scoring script and environment its own files make (Azure's no-code deployment)."""
    code = (attrs.get("code_configuration") or {}).get("codeId")
    environment = attrs.get("environment_id")
    if code and environment:
        return
    mlflow = bool(model) and references.resolve(workspace, model, "models").is_mlflow
    if mlflow and not code and not environment:
        return
    if mlflow:
        because = "; leave out both to deploy the MLflow model with its own"
        needs = (
            "an environment (environmentId) for its scoring script",
            "a scoring script (codeConfiguration) to run in its environment",
        )
    else:
        because = ": only an MLflow model (modelType mlflow_model) deploys without one"
        needs = ("an environment (environmentId)", "a scoring script (codeConfiguration)")
    if not environment:
        message = f"The deployment needs {needs[0]}{because}."
        raise serializers.ValidationError({"environmentId": [message]})
    message = f"The deployment needs {needs[1]}{because}."
    if attrs.get("code_configuration"):
        raise serializers.ValidationError({"codeConfiguration": {"codeId": [message]}})
    raise serializers.ValidationError({"codeConfiguration": [message]})


class OnlineDeploymentSerializer(TrackedResourceSerializer):
    resource_type = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"

    sku = SkuSerializer(required=False, allow_null=True)
    properties = OnlineDeploymentPropertiesSerializer(source="*")

    def validate_sku(self, value):
        return validate_capacity(value)


def validate_capacity(sku):
    if sku and sku.get("capacity") is not None:
        limit = settings.WEIR_MAX_INSTANCES_PER_DEPLOYMENT
        if not 1 <= sku["capacity"] <= limit:
            raise serializers.ValidationError(
                {"capacity": [f"instance count must be between 1 and {limit}"]}
            )
    return sku


class OnlineDeploymentUpdateSerializer(serializers.Serializer):
    """PATCH body (PartialMinimalTrackedResourceWithSku): tags replace; sku.capacity scales."""

    tags = tag_map(required=False, allow_null=True)
    sku = SkuSerializer(required=False, allow_null=True, partial=True)

    def validate_sku(self, value):
        return validate_capacity(value)


class DeploymentLogsRequestSerializer(serializers.Serializer):
    containerType = serializers.ChoiceField(
        choices=ContainerType.choices, default=ContainerType.INFERENCE_SERVER
    )
    tail = IntegerField(min_value=0, max_value=100000, required=False, allow_null=True)


class DeploymentLogsSerializer(serializers.Serializer):
    content = serializers.CharField(allow_null=True)


class SkuSettingSerializer(serializers.Serializer):
    name = serializers.CharField()
    tier = serializers.CharField()


class SkuCapacitySerializer(serializers.Serializer):
    minimum = IntegerField()
    maximum = IntegerField()
    default = IntegerField()
    scaleType = serializers.ChoiceField(choices=["Automatic", "Manual", "None"])


class SkuResourceSerializer(serializers.Serializer):
    resourceType = serializers.CharField()
    sku = SkuSettingSerializer()
    capacity = SkuCapacitySerializer()


class ScaleEventSerializer(serializers.Serializer):
    """One autoscaler decision (a Weir extension: Azure does not expose these)."""

    decidedAt = serializers.DateTimeField(source="decided_at")
    action = serializers.ChoiceField(choices=ScaleAction.choices)
    fromInstances = IntegerField(source="from_instances")
    toInstances = IntegerField(source="to_instances")
    utilizationPercentage = serializers.FloatField(source="utilization_percentage")
    targetUtilizationPercentage = IntegerField(source="target_utilization_percentage")
    busyReplicas = serializers.FloatField(source="busy_replicas")
    queuedRequests = serializers.FloatField(source="queued_requests")
    readyReplicas = IntegerField(source="ready_replicas")
    minInstances = IntegerField(source="min_instances")
    maxInstances = IntegerField(source="max_instances")
    reason = serializers.CharField()
    outcome = serializers.CharField()
    operationId = serializers.UUIDField(source="operation_id", allow_null=True)
