"""A rollout's body: what a PUT sends (candidate, baseline, gates, steps, read by
controlplane.rollout.spec) and what every answer adds (status, step, the latest reading of
the gates and every decision)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from controlplane.arm.envelope import ArmResourceSerializer
from controlplane.arm.fields import IntegerField
from controlplane.rollout.models import Phase, RolloutStatus


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": ["exact"]},
            {
                "type": "object",
                "properties": {
                    "rule": {"type": "string", "enum": ["exact", "tolerance", "path"]},
                    "tolerance": {"type": "number", "minimum": 0},
                    "path": {"type": "string", "maxLength": 256},
                },
                "required": ["rule"],
            },
        ]
    }
)
class ComparisonField(serializers.JSONField):
    """Read by controlplane.rollout.spec; here for the schema."""


class RolloutGatesSerializer(serializers.Serializer):
    """Thresholds a step must hold. Rates are fractions from 0 to 1."""

    minAgreement = serializers.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        help_text="Mirror steps: the least share "
        "of mirrored requests whose shadow answer agrees with the live one.",
    )
    comparison = ComparisonField(
        required=False,
        help_text="Mirror steps: how the router compares the candidate's answers with the "
        'live ones (the same status in any case). "exact" (the default): the same JSON, '
        'numbers within 1e-6; {"rule": "tolerance", "tolerance": t}: numbers within '
        "t * max(1, |live|); "
        '{"rule": "path", "path": "$.predictions", "tolerance": t}: only what the JSONPath '
        "($, .key, ['key'], [index], [*]) selects, which must select something in both. "
        "Set as the endpoint's mirrorComparison with the step's mirror traffic.",
    )
    maxErrorRate = serializers.FloatField(
        required=False,
        min_value=0,
        max_value=1,
        help_text="Traffic steps: the largest "
        "share of the candidate's requests answered with a status of errorStatusClasses.",
    )
    errorStatusClasses = serializers.ListField(
        child=serializers.ChoiceField(choices=["4xx", "5xx"]),
        required=False,
        help_text='Default ["5xx"]. A scoring script that raises is answered 424 (4xx).',
    )
    maxP99Ms = serializers.FloatField(
        required=False, help_text="Traffic steps: the candidate's p99 latency, in milliseconds."
    )
    maxP99Ratio = serializers.FloatField(
        required=False,
        help_text="Traffic steps: the candidate's p99 at most this many "
        "times the baseline's, over the same window.",
    )


class RolloutStepSerializer(serializers.Serializer):
    traffic = IntegerField(
        required=False, min_value=1, max_value=100, help_text="The candidate's live traffic, %."
    )
    baselineTraffic = IntegerField(
        required=False,
        min_value=0,
        max_value=100,
        help_text="The baseline's live traffic, %: 100 - traffic (the default).",
    )
    mirror = IntegerField(
        required=False,
        min_value=1,
        max_value=50,
        help_text="A mirror step: the share of live requests copied to the candidate, %.",
    )
    durationSeconds = serializers.FloatField(required=False, min_value=0)
    minRequests = IntegerField(required=False, min_value=0)
    gates = RolloutGatesSerializer(required=False, help_text="Over the rollout's gates.")


class RolloutPropertiesSerializer(serializers.Serializer):
    candidate = serializers.CharField(help_text="The deployment rolled out.")
    baseline = serializers.CharField(
        required=False,
        help_text="The deployment holding all the live traffic now (found when not named).",
    )
    gates = RolloutGatesSerializer(required=False)
    steps = RolloutStepSerializer(many=True)
    status = serializers.ChoiceField(choices=RolloutStatus.choices, read_only=True)
    phase = serializers.ChoiceField(choices=Phase.choices, read_only=True)
    currentStep = IntegerField(source="current_step", read_only=True)
    stepStartedAt = serializers.DateTimeField(source="step_started_at", read_only=True)
    operationId = serializers.UUIDField(source="operation_id", read_only=True, allow_null=True)
    abortRequestedBy = serializers.CharField(
        source="abort_requested_by", read_only=True, allow_null=True
    )
    reading = serializers.SerializerMethodField()
    decisions = serializers.SerializerMethodField()
    error = serializers.JSONField(read_only=True)
    endedAt = serializers.DateTimeField(source="ended_at", read_only=True)

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_reading(self, obj) -> dict | None:
        return obj.reading

    @extend_schema_field({"type": "array", "items": {"type": "object"}})
    def get_decisions(self, obj) -> list:
        return obj.decisions


class RolloutSerializer(ArmResourceSerializer):
    resource_type = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/rollouts"
    properties = RolloutPropertiesSerializer(source="*")
