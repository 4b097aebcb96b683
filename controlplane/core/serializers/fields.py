"""Field types shared by resource serializers."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from controlplane.core.durations import parse_seconds
from controlplane.core.quantities import parse_quantity

# The longest duration any backend takes: Kubernetes' probe fields are int32 seconds.
MAX_DURATION_SECONDS = 2**31 - 1


@extend_schema_field(OpenApiTypes.STR)
class DurationField(serializers.CharField):
    """An ISO 8601 duration string, kept as sent, with bounds in seconds (at most
    MAX_DURATION_SECONDS)."""

    def __init__(
        self,
        *,
        min_seconds: float | None = None,
        max_seconds: float = MAX_DURATION_SECONDS,
        **kw,
    ):
        self.min_seconds = min_seconds
        self.max_seconds = max_seconds
        super().__init__(**kw)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            seconds = parse_seconds(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        if self.min_seconds is not None and seconds < self.min_seconds:
            raise serializers.ValidationError(f"must be at least {self.min_seconds:g} seconds")
        if seconds > self.max_seconds:
            raise serializers.ValidationError(f"must be at most {self.max_seconds:.15g} seconds")
        return value


class QuantityField(serializers.CharField):
    """A Kubernetes resource quantity (``2``, ``500m``, ``512Mi``), kept as sent; ``whole``
    ones (devices such as GPUs) are whole numbers, as Kubernetes counts them."""

    def __init__(self, *, whole: bool = False, **kw):
        self.whole = whole
        kw.setdefault("max_length", 64)
        super().__init__(**kw)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            amount = parse_quantity(value)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None
        if self.whole and amount != amount.to_integral_value():
            raise serializers.ValidationError(f"'{value}' is not a whole number")
        return value


class JsonDocumentSerializer(serializers.Serializer):
    """A nested object stored as a JSON document: reads return what was validated."""

    def to_representation(self, instance):
        if isinstance(instance, dict):
            return super().to_representation(_AttrDict(instance))
        return super().to_representation(instance)


class _AttrDict(dict):
    def __getattr__(self, item):
        try:
            return self[item]
        except KeyError as exc:
            raise AttributeError(item) from exc


class CaseInsensitiveChoiceField(serializers.ChoiceField):
    """An enum matched whatever its case (Azure's SDK sends ``aadToken`` for ``AADToken``,
    ``info`` for ``Info``) and kept in the spelling of the choices."""

    def to_internal_value(self, data):
        if isinstance(data, str):
            for choice in self.choices:
                if str(choice).lower() == data.lower():
                    return choice
        return super().to_internal_value(data)
