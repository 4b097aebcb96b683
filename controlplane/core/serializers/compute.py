"""Compute (Microsoft.MachineLearningServices/workspaces/computes): Kubernetes only."""

import re

from rest_framework import serializers

from controlplane.arm.envelope import ProvisioningStateMixin, TrackedResourceSerializer

# A Kubernetes namespace: a DNS-1123 label.
NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class KubernetesPropertiesSerializer(serializers.Serializer):
    namespace = serializers.CharField(default="default", max_length=63)
    defaultInstanceType = serializers.CharField(
        source="properties.defaultInstanceType", required=False, allow_null=True
    )
    instanceTypes = serializers.DictField(
        source="properties.instanceTypes", required=False, allow_null=True
    )

    def validate_namespace(self, value):
        if not NAMESPACE.match(value):
            raise serializers.ValidationError(
                "a namespace is 1-63 lower-case letters, digits and '-', starting and ending "
                "with a letter or digit"
            )
        return value


class ComputePropertiesSerializer(ProvisioningStateMixin):
    computeType = serializers.ChoiceField(
        source="compute_type",
        choices=["Kubernetes"],
        error_messages={"invalid_choice": "only Kubernetes computes can be attached, not {input}"},
    )
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    resourceId = serializers.CharField(
        source="resource_id", required=False, allow_null=True, allow_blank=True, max_length=1024
    )
    createdOn = serializers.DateTimeField(source="created_at", read_only=True)
    modifiedOn = serializers.DateTimeField(source="modified_at", read_only=True)
    properties = KubernetesPropertiesSerializer(source="*", required=False)


class ComputeResourceSerializer(TrackedResourceSerializer):
    resource_type = "Microsoft.MachineLearningServices/workspaces/computes"

    properties = ComputePropertiesSerializer(source="*")
