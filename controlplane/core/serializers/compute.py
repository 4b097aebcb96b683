"""Compute (Microsoft.MachineLearningServices/workspaces/computes): an attached Kubernetes
cluster, or an AmlCompute cluster, which Weir runs as a pool of local batch workers."""

import re

from rest_framework import serializers

from controlplane.arm.envelope import ProvisioningStateMixin, TrackedResourceSerializer
from controlplane.arm.fields import IntegerField
from controlplane.core.serializers.fields import DurationField, JsonDocumentSerializer

# A Kubernetes namespace: a DNS-1123 label.
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
KUBERNETES = "Kubernetes"
CLUSTER_BACKEND, LOCAL_BACKEND = "kubernetes", "local"
BACKENDS = (CLUSTER_BACKEND, LOCAL_BACKEND)
AML_COMPUTE = "AmlCompute"


class KubernetesPropertiesSerializer(serializers.Serializer):
    namespace = serializers.CharField(default="default", max_length=63)
    defaultInstanceType = serializers.CharField(
        source="properties.defaultInstanceType", required=False, allow_null=True
    )
    instanceTypes = serializers.DictField(
        source="properties.instanceTypes", required=False, allow_null=True
    )
    # Weir's own: what runs the deployments sent here. "kubernetes": the cluster resourceId
    # names; "local": Weir's own replicas on this machine, so scripts written for a cluster
    # (SDK v1's AKS deployments) run unchanged where there is none.
    backend = serializers.ChoiceField(
        source="properties.backend", choices=BACKENDS, default=CLUSTER_BACKEND
    )

    def validate_namespace(self, value):
        if not NAMESPACE.match(value):
            raise serializers.ValidationError(
                "a namespace is 1-63 lower-case letters, digits and '-', starting and ending "
                "with a letter or digit"
            )
        return value


class ScaleSettingsSerializer(JsonDocumentSerializer):
    maxNodeCount = IntegerField(min_value=1)
    minNodeCount = IntegerField(min_value=0, default=0)
    nodeIdleTimeBeforeScaleDown = DurationField(min_seconds=0, required=False, allow_null=True)

    def validate(self, attrs):
        if attrs["minNodeCount"] > attrs["maxNodeCount"]:
            raise serializers.ValidationError(
                {"minNodeCount": ["minNodeCount cannot exceed maxNodeCount"]}
            )
        return attrs


class AmlComputePropertiesSerializer(JsonDocumentSerializer):
    """AmlCompute's properties as Azure's SDK sends them. Weir runs the cluster's nodes as
    local batch worker processes: scaleSettings.maxNodeCount caps a job's instances; the
    VM size and priority are kept and answered as sent."""

    vmSize = serializers.CharField(required=False, allow_null=True, max_length=64)
    vmPriority = serializers.CharField(required=False, allow_null=True, max_length=32)
    osType = serializers.CharField(required=False, allow_null=True, max_length=16)
    scaleSettings = ScaleSettingsSerializer()
    remoteLoginPortPublicAccess = serializers.CharField(
        required=False, allow_null=True, max_length=16
    )
    enableNodePublicIp = serializers.JSONField(required=False, allow_null=True)


class ComputePropertiesSerializer(ProvisioningStateMixin):
    computeType = serializers.ChoiceField(
        source="compute_type",
        choices=[KUBERNETES, AML_COMPUTE],
        error_messages={
            "invalid_choice": "only Kubernetes and AmlCompute computes can be attached, not {input}"
        },
    )
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    resourceId = serializers.CharField(
        source="resource_id", required=False, allow_null=True, allow_blank=True, max_length=1024
    )
    createdOn = serializers.DateTimeField(source="created_at", read_only=True)
    modifiedOn = serializers.DateTimeField(source="modified_at", read_only=True)
    # Kubernetes: namespace, defaultInstanceType, instanceTypes; AmlCompute: its own
    # properties (AmlComputePropertiesSerializer). Checked by type in validate.
    properties = serializers.JSONField(source="*", required=False)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        if instance.compute_type == AML_COMPUTE:
            data["properties"] = instance.properties
        else:
            data["properties"] = KubernetesPropertiesSerializer(instance).data
        return data

    def to_internal_value(self, data):
        raw = data.get("properties") if isinstance(data, dict) else None
        attrs = super().to_internal_value(
            {k: v for k, v in data.items() if k != "properties"} if isinstance(data, dict) else data
        )
        if attrs["compute_type"] == AML_COMPUTE:
            nested = AmlComputePropertiesSerializer(data=raw if raw is not None else {})
            if not nested.is_valid():
                raise serializers.ValidationError({"properties": nested.errors})
            attrs["properties"] = dict(AmlComputePropertiesSerializer(nested.validated_data).data)
            attrs["namespace"] = "default"
        else:
            nested = KubernetesPropertiesSerializer(data=raw if raw is not None else {})
            if not nested.is_valid():
                raise serializers.ValidationError({"properties": nested.errors})
            attrs.update(nested.validated_data)
        return attrs


class ComputeResourceSerializer(TrackedResourceSerializer):
    resource_type = "Microsoft.MachineLearningServices/workspaces/computes"

    properties = ComputePropertiesSerializer(source="*")
