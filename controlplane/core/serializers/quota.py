"""Weir's per-credential scoring quotas of an online endpoint (``keyQuotas``) and the
usage the routers report (``keyUsage``)."""

from __future__ import annotations

from rest_framework import serializers

from contracts.routing import CREDENTIALS
from controlplane.arm.fields import IntegerField, json_type
from controlplane.core.serializers.fields import JsonDocumentSerializer

MAX_REQUESTS_PER_SECOND = 1_000_000
MAX_BURST = 1_000_000
MAX_CONCURRENT_REQUESTS = 100_000


class RateField(serializers.FloatField):
    """A JSON number above 0 (a string or a boolean is refused, as for integers)."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise serializers.ValidationError(f"Must be a number, not {json_type(data)}.")
        value = super().to_internal_value(data)
        if not value > 0:
            raise serializers.ValidationError("Must be greater than 0.")
        return value


class CredentialQuotaSerializer(JsonDocumentSerializer):
    """One credential's limits: a token bucket refilled at ``requestsPerSecond`` holding
    ``burst`` requests (default: one second's worth), and requests in flight at once."""

    requestsPerSecond = RateField(
        required=False, allow_null=True, max_value=MAX_REQUESTS_PER_SECOND
    )
    burst = IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_BURST)
    maxConcurrentRequests = IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_CONCURRENT_REQUESTS
    )

    def to_internal_value(self, data):
        if isinstance(data, dict):
            _refuse_unknown(data, self.fields)
        return super().to_internal_value(data)

    def validate(self, attrs):
        rate, burst = attrs.get("requestsPerSecond"), attrs.get("burst")
        if burst is not None and rate is None:
            raise serializers.ValidationError({"burst": ["A burst needs requestsPerSecond."]})
        if rate is not None and burst is None:
            burst = max(1, -int(-rate // 1))
        return {
            "requestsPerSecond": rate,
            "burst": burst,
            "maxConcurrentRequests": attrs.get("maxConcurrentRequests"),
        }


class KeyQuotasSerializer(serializers.Serializer):
    """By credential: the endpoint's primary key, its secondary key, and AMLTokens as a
    class (every token the endpoint issues shares one quota). Null or absent: no limit."""

    primaryKey = CredentialQuotaSerializer(required=False, allow_null=True)
    secondaryKey = CredentialQuotaSerializer(required=False, allow_null=True)
    amlToken = CredentialQuotaSerializer(required=False, allow_null=True)

    def to_internal_value(self, data):
        if isinstance(data, dict):
            _refuse_unknown(data, self.fields)
        return super().to_internal_value(data)

    def to_representation(self, instance):
        return {name: instance.get(name) for name in CREDENTIALS}

    def validate(self, attrs):
        # Stored without the credentials that have no limit at all.
        return {
            name: quota
            for name, quota in attrs.items()
            if quota and any(value is not None for value in quota.values())
        }


def _refuse_unknown(data: dict, fields) -> None:
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise serializers.ValidationError(
            {unknown[0]: [f"Unknown field; expected one of {', '.join(fields)}."]}
        )


class CredentialUsageSerializer(serializers.Serializer):
    requestsLastMinute = IntegerField(int64=True)
    throttledLastMinute = IntegerField(int64=True)
    inFlight = IntegerField()
    availableTokens = IntegerField(allow_null=True)


class KeyUsageSerializer(serializers.Serializer):
    """What the routers counted, summed over their serving processes."""

    primaryKey = CredentialUsageSerializer()
    secondaryKey = CredentialUsageSerializer()
    amlToken = CredentialUsageSerializer()
    reportingProcesses = IntegerField()
