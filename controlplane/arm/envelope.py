"""The ARM resource envelope, defined once: id, name, type, location, tags, systemData,
properties (a nested serializer over the same object, ``source="*"``)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers


class SystemDataSerializer(serializers.Serializer):
    createdBy = serializers.CharField(source="created_by", read_only=True)
    createdByType = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at", read_only=True)
    lastModifiedBy = serializers.CharField(source="modified_by", read_only=True)
    lastModifiedByType = serializers.SerializerMethodField()
    lastModifiedAt = serializers.DateTimeField(source="modified_at", read_only=True)

    def get_createdByType(self, obj) -> str:
        return "User"

    def get_lastModifiedByType(self, obj) -> str:
        return "User"


class ManagedServiceIdentitySerializer(serializers.Serializer):
    type = serializers.ChoiceField(
        choices=["None", "SystemAssigned", "UserAssigned", "SystemAssigned,UserAssigned"]
    )
    principalId = serializers.UUIDField(read_only=True, required=False)
    tenantId = serializers.UUIDField(read_only=True, required=False)
    # ARM id of each identity -> {principalId, clientId} (empty objects in requests).
    userAssignedIdentities = serializers.DictField(
        child=serializers.DictField(), required=False, allow_null=True
    )

    def validate(self, attrs):
        # Required even in a PATCH (partial): an identity is replaced whole, never merged.
        if "type" not in attrs:
            raise serializers.ValidationError({"type": ["This field is required."]})
        return attrs

    def to_representation(self, instance):
        return instance  # stored as the validated JSON document


class SkuSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=64)
    tier = serializers.ChoiceField(
        choices=["Free", "Basic", "Standard", "Premium"], required=False, allow_null=True
    )
    size = serializers.CharField(required=False, allow_null=True, max_length=64)
    family = serializers.CharField(required=False, allow_null=True, max_length=64)
    capacity = serializers.IntegerField(required=False, allow_null=True)

    def to_representation(self, instance):
        return {k: v for k, v in instance.items() if v is not None}


def string_map(**kwargs) -> serializers.DictField:
    return serializers.DictField(child=serializers.CharField(allow_blank=True), **kwargs)


class ArmResourceSerializer(serializers.Serializer):
    """id, name, type and systemData: read-only, derived from the row."""

    resource_type: str = ""

    id = serializers.SerializerMethodField()
    name = serializers.CharField(read_only=True)
    type = serializers.SerializerMethodField()
    systemData = SystemDataSerializer(source="*", read_only=True)

    @extend_schema_field(OpenApiTypes.STR)
    def get_id(self, obj) -> str:
        return obj.arm_id

    @extend_schema_field(OpenApiTypes.STR)
    def get_type(self, obj) -> str:
        return self.resource_type


class TrackedResourceSerializer(ArmResourceSerializer):
    """Adds what a tracked resource carries: location (fixed at create), tags, identity, kind."""

    location = serializers.CharField(max_length=64)
    tags = string_map(required=False, allow_null=True)
    identity = ManagedServiceIdentitySerializer(required=False, allow_null=True)
    kind = serializers.CharField(required=False, allow_null=True, max_length=64)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["tags"] = data.get("tags") or {}
        return data


class ProvisioningStateMixin(serializers.Serializer):
    """provisioningState: read-only in every serializer. Requests never set it; services
    move it along core.states' edges (check_edge before they save a row they hold locked),
    workers by core.states.transition (a conditional UPDATE)."""

    provisioningState = serializers.CharField(source="provisioning_state", read_only=True)
