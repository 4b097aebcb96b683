"""The ARM resource envelope, defined once: id, name, type, location, tags, systemData,
properties (a nested serializer over the same object, ``source="*"``)."""

from __future__ import annotations

import re

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from controlplane.arm.fields import IntegerField


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
    capacity = IntegerField(required=False, allow_null=True)

    def to_representation(self, instance):
        return {k: v for k, v in instance.items() if v is not None}


def string_map(**kwargs) -> serializers.DictField:
    return serializers.DictField(child=serializers.CharField(allow_blank=True), **kwargs)


# ARM's rules for tags, on every resource that has them: at most 50, names of at most 512
# characters without < > % & \ ? / or control characters (except names starting hidden- or
# link:, which ARM lets hold links), values of at most 256. Refusals carry ARM's codes.
MAX_TAGS = 50
MAX_TAG_NAME = 512
MAX_TAG_VALUE = 256
RESERVED_IN_TAG_NAMES = re.compile(r"[<>%&\\?/\x00-\x1f\x7f]")
LINK_TAG_PREFIXES = ("hidden-", "link:")


def _quoted(text: str) -> str:
    return f"'{text[:64]}...'" if len(text) > 64 else f"'{text}'"


@extend_schema_field(
    {
        "type": "object",
        "maxProperties": MAX_TAGS,
        "additionalProperties": {"type": "string", "maxLength": MAX_TAG_VALUE},
    }
)
class TagsField(serializers.DictField):
    """A resource's tags, held to ARM's limits."""

    child = serializers.CharField(allow_blank=True)

    def to_internal_value(self, data):
        if isinstance(data, dict) and len(data) > MAX_TAGS:
            raise serializers.ValidationError(
                f"Too many tags specified. Requested tag count - '{len(data)}'. Maximum "
                f"number of tags allowed - '{MAX_TAGS}'.",
                code="InvalidTags",
            )
        tags = super().to_internal_value(data)
        for name, value in tags.items():
            if not name.strip():
                raise serializers.ValidationError(
                    "The tag name must be non-empty and not whitespace only.",
                    code="InvalidTagName",
                )
            if len(name) > MAX_TAG_NAME:
                raise serializers.ValidationError(
                    f"The tag name {_quoted(name)} exceeds the maximum length of "
                    f"{MAX_TAG_NAME} characters.",
                    code="InvalidTagName",
                )
            if RESERVED_IN_TAG_NAMES.search(name) and not name.lower().startswith(
                LINK_TAG_PREFIXES
            ):
                raise serializers.ValidationError(
                    f"The tag name {_quoted(name)} has reserved characters '<,>,%,&,\\,?,/' "
                    "or control characters.",
                    code="InvalidTagNameCharacters",
                )
            if len(value) > MAX_TAG_VALUE:
                raise serializers.ValidationError(
                    f"The value of tag {_quoted(name)} exceeds the maximum length of "
                    f"{MAX_TAG_VALUE} characters.",
                    code="InvalidTagValueLength",
                )
        return tags


def tag_map(**kwargs) -> TagsField:
    return TagsField(**kwargs)


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
    tags = tag_map(required=False, allow_null=True)
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
