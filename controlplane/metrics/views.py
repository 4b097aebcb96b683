"""Azure Monitor's metrics API over an online endpoint or deployment:
``{resource id}/providers/Microsoft.Insights/metrics`` (values) and ``.../metricDefinitions``.
Authorization reads the path as ``Microsoft.Insights/metrics/read`` (and
``metricDefinitions/read``) over the resource, as Azure does: a Reader may read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework.response import Response

from controlplane.arm.views import ArmView
from controlplane.core.views.lookups import get_deployment, get_endpoint
from controlplane.metrics import aggregates, parameters
from controlplane.metrics.definitions import DEPLOYMENT, STATUS_CODE_CLASS, Metric
from controlplane.metrics.serializers import (
    MetricDefinitionCollectionSerializer,
    MetricsResponseSerializer,
)

NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
PARAMETERS = [
    OpenApiParameter(
        "metricnames", str, description="Comma-separated metric names (default: all)."
    ),
    OpenApiParameter(
        "timespan",
        str,
        description="start/end in ISO 8601, start/duration, or a duration ending now "
        "(default: the last hour; at most 30 days).",
    ),
    OpenApiParameter(
        "interval",
        {"type": "string", "enum": [*parameters.INTERVALS, parameters.FULL]},
        description="The time grain of the points (default PT1M).",
    ),
    OpenApiParameter(
        "aggregation",
        str,
        description="Comma-separated: Total, Average, Minimum, Maximum (default: each "
        "metric's primary aggregation).",
    ),
    OpenApiParameter(
        "$filter",
        str,
        description="Dimension terms: deployment eq 'blue', statusCodeClass eq '5xx'; '*' "
        "splits by every value; 'or' within a dimension, 'and' between them.",
    ),
]


class ResourceMetricsView(ArmView):
    """An online endpoint's metrics (all its deployments), or one deployment's."""

    def resource(self):
        """(ARM id, namespace, endpoint, its deployments this resource covers)."""
        endpoint = get_endpoint(self.kwargs)
        if "deploymentName" in self.kwargs:
            deployment = get_deployment(self.kwargs, endpoint)
            return deployment.arm_id, f"{NAMESPACE}/deployments", endpoint, [deployment]
        deployments = list(endpoint.deployments.order_by("name"))
        return endpoint.arm_id, NAMESPACE, endpoint, deployments


class MetricsView(ResourceMetricsView):
    def get(self, request, **kwargs):
        query = parameters.read(request.query_params, timezone.now())
        resource_id, namespace, endpoint, deployments = self.resource()
        wanted = query.filters.get(DEPLOYMENT)
        if wanted:
            names = {name.lower() for name in wanted}
            deployments = [d for d in deployments if d.name.lower() in names]
        found = aggregates.aggregate(
            [d.pk for d in deployments], query.start, query.end, query.step
        )
        answer = Answer(query, deployments, found)
        return Response(
            {
                "cost": 0,
                "timespan": f"{timestamp(query.start)}/{timestamp(query.end)}",
                "interval": query.interval,
                "value": [answer.metric(metric, resource_id) for metric in query.metrics],
                "namespace": namespace,
                "resourceregion": endpoint.location,
            }
        )


class Answer:
    """The time series of each metric asked for, split by the dimensions the filter names."""

    def __init__(self, query: parameters.Query, deployments: list, found: dict):
        self.query = query
        self.deployments = deployments
        self.found = found
        self.spans = aggregates.spans(query.start, query.end, query.step)
        self.totals: dict[tuple, list[aggregates.Totals]] = {}

    def metric(self, metric: Metric, resource_id: str) -> dict:
        filters = {k: v for k, v in self.query.filters.items() if k in metric.dimensions}
        if DEPLOYMENT in filters:
            groups = [(d.name, [d]) for d in self.deployments]
        else:
            groups = [(None, self.deployments)]
        classes = [None]
        if STATUS_CODE_CLASS in filters:
            classes = sorted(filters[STATUS_CODE_CLASS] or STATUS_CLASSES)
        series = []
        for name, group in groups:
            for status_class in classes:
                metadata = []
                if name is not None:
                    metadata.append(dimension_value(DEPLOYMENT, name))
                if status_class is not None:
                    metadata.append(dimension_value(STATUS_CODE_CLASS, status_class))
                data = self.points(metric, group, status_class)
                series.append({"metadatavalues": metadata, "data": data})
        return {
            "id": f"{resource_id}/providers/Microsoft.Insights/metrics/{metric.name}",
            "type": "Microsoft.Insights/metrics",
            "name": {"value": metric.name, "localizedValue": metric.display_name},
            "displayDescription": metric.description,
            "unit": metric.unit,
            "timeseries": series,
            "errorCode": "Success",
        }

    def points(self, metric: Metric, group: list, status_class: str | None) -> list[dict]:
        aggregations = self.query.aggregations or [metric.primary]
        points = []
        for span, totals in zip(self.spans, self.group_totals(group), strict=True):
            minutes = (min(span + self.query.step, self.query.end) - span) / timedelta(minutes=1)
            point = {"timeStamp": timestamp(span)}
            for aggregation in aggregations:
                value = metric.value(totals, aggregation, minutes, status_class)
                if value is not None:
                    point[aggregation.lower()] = value
            points.append(point)
        return points

    def group_totals(self, group: list) -> list[aggregates.Totals]:
        key = tuple(d.pk for d in group)
        if key not in self.totals:
            self.totals[key] = [
                aggregates.added(self.found.get((d.pk, span)) for d in group) for span in self.spans
            ]
        return self.totals[key]


def dimension_value(name: str, value: str) -> dict:
    return {"name": {"value": name, "localizedValue": name}, "value": value}


def timestamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class MetricDefinitionsView(ResourceMetricsView):
    def get(self, request, **kwargs):
        resource_id, namespace, _, _ = self.resource()
        retention = f"P{settings.WEIR_METRICS_RETENTION_DAYS}D"
        return Response(
            {
                "value": [
                    {
                        "id": f"{resource_id}/providers/Microsoft.Insights/metricdefinitions/"
                        f"{metric.name}",
                        "resourceId": resource_id,
                        "namespace": namespace,
                        "category": "Traffic",
                        "name": {"value": metric.name, "localizedValue": metric.display_name},
                        "displayDescription": metric.description,
                        "isDimensionRequired": False,
                        "unit": metric.unit,
                        "primaryAggregationType": metric.primary,
                        "supportedAggregationTypes": list(metric.aggregations),
                        "metricAvailabilities": [
                            {"timeGrain": grain, "retention": retention}
                            for grain in parameters.INTERVALS
                        ],
                        "dimensions": [
                            {"value": d, "localizedValue": d} for d in metric.dimensions
                        ],
                    }
                    for metric in parameters.METRICS.values()
                ]
            }
        )


METRICS_SCHEMA = {"parameters": PARAMETERS, "responses": MetricsResponseSerializer}
DEFINITIONS_SCHEMA = {"responses": MetricDefinitionCollectionSerializer}


@extend_schema_view(get=extend_schema(operation_id="Metrics_ListOnlineEndpoint", **METRICS_SCHEMA))
class EndpointMetricsView(MetricsView):
    pass


@extend_schema_view(
    get=extend_schema(operation_id="Metrics_ListOnlineDeployment", **METRICS_SCHEMA)
)
class DeploymentMetricsView(MetricsView):
    pass


@extend_schema_view(
    get=extend_schema(operation_id="MetricDefinitions_ListOnlineEndpoint", **DEFINITIONS_SCHEMA)
)
class EndpointMetricDefinitionsView(MetricDefinitionsView):
    pass


@extend_schema_view(
    get=extend_schema(operation_id="MetricDefinitions_ListOnlineDeployment", **DEFINITIONS_SCHEMA)
)
class DeploymentMetricDefinitionsView(MetricDefinitionsView):
    pass
