"""The shapes of Azure Monitor's metrics answers (Microsoft.Insights 2023-10-01), for the
schema: the views build the answers themselves."""

from rest_framework import serializers

from controlplane.arm import fields
from controlplane.audit.serializers import LocalizableStringSerializer


class MetadataValueSerializer(serializers.Serializer):
    name = LocalizableStringSerializer()
    value = serializers.CharField()


class MetricValueSerializer(serializers.Serializer):
    timeStamp = serializers.DateTimeField()
    average = serializers.FloatField(required=False)
    minimum = serializers.FloatField(required=False)
    maximum = serializers.FloatField(required=False)
    total = serializers.FloatField(required=False)
    count = serializers.FloatField(required=False)


class TimeSeriesElementSerializer(serializers.Serializer):
    metadatavalues = MetadataValueSerializer(many=True)
    data = MetricValueSerializer(many=True)


class MetricSerializer(serializers.Serializer):
    id = serializers.CharField()
    type = serializers.CharField()
    name = LocalizableStringSerializer()
    displayDescription = serializers.CharField()
    unit = serializers.CharField()
    timeseries = TimeSeriesElementSerializer(many=True)
    errorCode = serializers.CharField()


class MetricsResponseSerializer(serializers.Serializer):
    cost = fields.IntegerField()
    timespan = serializers.CharField()
    interval = serializers.CharField()
    value = MetricSerializer(many=True)
    namespace = serializers.CharField()
    resourceregion = serializers.CharField()


class MetricAvailabilitySerializer(serializers.Serializer):
    timeGrain = serializers.CharField()
    retention = serializers.CharField()


class MetricDefinitionSerializer(serializers.Serializer):
    id = serializers.CharField()
    resourceId = serializers.CharField()
    namespace = serializers.CharField()
    category = serializers.CharField()
    name = LocalizableStringSerializer()
    displayDescription = serializers.CharField()
    isDimensionRequired = fields.BooleanField()
    unit = serializers.CharField()
    primaryAggregationType = serializers.CharField()
    supportedAggregationTypes = serializers.ListField(child=serializers.CharField())
    metricAvailabilities = MetricAvailabilitySerializer(many=True)
    dimensions = LocalizableStringSerializer(many=True)


class MetricDefinitionCollectionSerializer(serializers.Serializer):
    value = MetricDefinitionSerializer(many=True)
