"""Online endpoint (workspaces/onlineEndpoints) and its keys and token."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from contracts.comparison import DEFAULT_TOLERANCE, MAX_PATH, MirrorComparison
from controlplane.arm.envelope import (
    ManagedServiceIdentitySerializer,
    ProvisioningStateMixin,
    SkuSerializer,
    TrackedResourceSerializer,
    string_map,
    tag_map,
)
from controlplane.arm.fields import IntegerField, json_type
from controlplane.core.choices import AuthMode, KeyType, PublicNetworkAccess
from controlplane.core.models.endpoint import scoring_host
from controlplane.core.serializers.fields import JsonDocumentSerializer

MAX_MIRROR_PERCENT = 50
# A replaced key's overlap window: at most a week.
MAX_OVERLAP_SECONDS = 7 * 24 * 3600


class EndpointAuthKeysSerializer(serializers.Serializer):
    primaryKey = serializers.CharField(
        allow_null=True, required=False, min_length=8, max_length=256
    )
    secondaryKey = serializers.CharField(
        allow_null=True, required=False, min_length=8, max_length=256
    )


def _traffic_map(**kwargs):
    return serializers.DictField(
        child=IntegerField(min_value=0, max_value=100),
        required=False,
        allow_null=True,
        **kwargs,
    )


class ToleranceField(serializers.FloatField):
    """A finite JSON number, at least 0 (a string or a boolean is refused)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise serializers.ValidationError(f"Must be a number, not {json_type(data)}.")
        if not 0 <= data < float("inf"):
            raise serializers.ValidationError("Must be a finite number, at least 0.")
        return float(data)


class MirrorComparisonSerializer(JsonDocumentSerializer):
    """Beyond Azure: how the router compares a shadow deployment's answers with the live
    ones (contracts.comparison). The statuses must be equal in any case."""

    tolerance = ToleranceField(
        required=False,
        default=DEFAULT_TOLERANCE,
        help_text="Numbers agree when |shadow - live| <= tolerance * max(1, |live|): "
        "relative to the live value, absolute below 1. Default 1e-6; 0: equal.",
    )
    path = serializers.CharField(
        required=False,
        allow_null=True,
        default=None,
        max_length=MAX_PATH,
        help_text="Compare only what this JSONPath selects in both answers ($, .key, "
        "['key'], [index], [*]); selecting nothing in either is a disagreement. "
        "Default: the whole answer.",
    )

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {unknown[0]: [f"Unknown field; expected one of {', '.join(self.fields)}."]}
                )
        return super().to_internal_value(data)

    def validate_path(self, value):
        if value is None:
            return None
        try:
            MirrorComparison.of(path=value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


class OnlineEndpointPropertiesSerializer(ProvisioningStateMixin):
    authMode = serializers.ChoiceField(source="auth_mode", choices=AuthMode.choices)
    description = serializers.CharField(required=False, allow_null=True, allow_blank=True)
    properties = string_map(required=False, allow_null=True)
    # Create-only and secret: accepted on the first PUT, always returned as null.
    keys = EndpointAuthKeysSerializer(required=False, allow_null=True, write_only=True)
    scoringUri = serializers.SerializerMethodField()
    swaggerUri = serializers.SerializerMethodField()
    compute = serializers.CharField(
        required=False, allow_null=True, allow_blank=True, max_length=1024
    )
    traffic = _traffic_map()
    mirrorTraffic = _traffic_map(source="mirror_traffic")
    mirrorComparison = MirrorComparisonSerializer(
        source="mirror_comparison",
        required=False,
        allow_null=True,
        help_text="Beyond Azure: how mirrored answers are compared with the live ones; "
        "null: the whole answer, numbers within 1e-6.",
    )
    publicNetworkAccess = serializers.ChoiceField(
        source="public_network_access",
        choices=PublicNetworkAccess.choices,
        required=False,
        default=PublicNetworkAccess.ENABLED,
    )

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_scoringUri(self, obj) -> str | None:
        return scoring_base(obj) + "/score"

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_swaggerUri(self, obj) -> str | None:
        return scoring_base(obj) + "/swagger.json"

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["keys"] = None
        return data

    def validate_traffic(self, value):
        return self._validate_weights(value or {}, "traffic")

    def validate_mirrorTraffic(self, value):
        value = self._validate_weights(value or {}, "mirrorTraffic")
        if len(value) > 1:
            raise serializers.ValidationError("at most one deployment can receive mirror traffic")
        for name, percent in value.items():
            if percent > MAX_MIRROR_PERCENT:
                raise serializers.ValidationError(
                    f"mirror traffic to '{name}' is {percent}%; at most "
                    f"{MAX_MIRROR_PERCENT}% can be mirrored"
                )
        return value

    def _validate_weights(self, value: dict, field: str) -> dict:
        """Deployment names must exist on this endpoint; keys take their canonical case."""
        existing = {name.lower(): name for name in self.context.get("deployment_names", [])}
        canonical = {}
        for name, percent in value.items():
            if name.lower() not in existing:
                raise serializers.ValidationError(
                    f"deployment '{name}' does not exist on this endpoint"
                )
            canonical[existing[name.lower()]] = percent
        return canonical

    def validate(self, attrs):
        traffic = attrs.get("traffic") or {}
        total = sum(traffic.values())
        if total not in (0, 100):
            raise serializers.ValidationError(
                {"traffic": [f"traffic values must sum to 0 or 100, not {total}"]}
            )
        for name, percent in (attrs.get("mirror_traffic") or {}).items():
            if percent and traffic.get(name, 0) > 0:
                raise serializers.ValidationError(
                    {
                        "mirrorTraffic": [
                            f"deployment '{name}' receives live traffic; a deployment gets live "
                            "or mirror traffic, not both"
                        ]
                    }
                )
        return attrs


def scoring_base(endpoint) -> str:
    """The URI that /score and /swagger.json follow, in the configured style."""
    port = settings.WEIR_SCORING_PORT
    if settings.WEIR_SCORING_URI_STYLE == "path":
        domain = settings.WEIR_SCORING_DOMAIN
        return f"http://{domain}:{port}/endpoints/{endpoint.workspace.name}/{endpoint.name}"
    host = endpoint.scoring_host or scoring_host(endpoint.name, endpoint.workspace.name)
    return f"http://{host}:{port}"


class OnlineEndpointSerializer(TrackedResourceSerializer):
    resource_type = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"

    sku = SkuSerializer(required=False, allow_null=True, write_only=True)
    properties = OnlineEndpointPropertiesSerializer(source="*")


class OnlineEndpointUpdateSerializer(serializers.Serializer):
    """PATCH body (PartialMinimalTrackedResourceWithIdentity): tags replace, identity."""

    tags = tag_map(required=False, allow_null=True)
    identity = ManagedServiceIdentitySerializer(required=False, allow_null=True)


class RegenerateKeysSerializer(serializers.Serializer):
    keyType = serializers.ChoiceField(choices=KeyType.choices)
    keyValue = serializers.CharField(required=False, allow_null=True, min_length=8, max_length=256)
    # Beyond Azure: how long the replaced key keeps working beside the new one.
    overlapSeconds = IntegerField(
        required=False, allow_null=True, min_value=0, max_value=MAX_OVERLAP_SECONDS
    )


class EndpointAuthTokenSerializer(serializers.Serializer):
    accessToken = serializers.CharField()
    tokenType = serializers.CharField()
    expiryTimeUtc = IntegerField(int64=True)
    refreshAfterTimeUtc = IntegerField(int64=True)
