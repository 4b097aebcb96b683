"""The metrics an online endpoint or deployment offers, by the names Azure Monitor gives
them for online endpoints (RequestsPerMinute, RequestLatency, RequestLatency_P50/P90/P95/
P99, DeploymentCapacity) and Weir's own for what Azure has no name for."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from controlplane.metrics.aggregates import Totals

TOTAL, AVERAGE, MINIMUM, MAXIMUM, COUNT = "Total", "Average", "Minimum", "Maximum", "Count"
AGGREGATIONS = (TOTAL, AVERAGE, MINIMUM, MAXIMUM, COUNT)
DEPLOYMENT, STATUS_CODE_CLASS = "deployment", "statusCodeClass"


@dataclass(frozen=True)
class Metric:
    name: str
    display_name: str
    description: str
    unit: str  # Azure's: Count, MilliSeconds, Percent
    aggregations: tuple[str, ...]
    primary: str
    dimensions: tuple[str, ...]
    # (totals, aggregation, minutes in the span, status class or None) -> value
    measure: Callable[[Totals, str, float, str | None], float | None]

    def value(
        self, totals: Totals, aggregation: str, minutes: float, status_class: str | None = None
    ) -> float | None:
        """The metric over one span (None: no value, or not an aggregation it has)."""
        if aggregation not in self.aggregations:
            return None
        return self.measure(totals, aggregation, minutes, status_class)


def _per_minute(count: Callable[[Totals, str | None], int]):
    def measure(totals, aggregation, minutes, status_class):
        total = count(totals, status_class)
        return total if aggregation == TOTAL else total / minutes

    return measure


def _requests(totals: Totals, status_class: str | None) -> int:
    return totals.total if status_class is None else totals.requests[status_class]


def _agreement(totals: Totals, aggregation, minutes, status_class) -> float | None:
    share = totals.agreement()
    return None if share is None else share * 100


def _quantile(quantile: float):
    return lambda totals, aggregation, minutes, status_class: totals.latency_ms(quantile)


def _gauge(prefix: str):
    suffix = {MAXIMUM: "max", MINIMUM: "min", AVERAGE: "mean"}
    return lambda totals, aggregation, minutes, status_class: getattr(
        totals, f"{prefix}_{suffix[aggregation]}"
    )


_COUNTED = (TOTAL, AVERAGE)
_SAMPLED = (AVERAGE, MINIMUM, MAXIMUM)
_REPLICAS = "Ready replicas of the deployment as the router saw them (each minute's highest)."

METRICS = {
    m.name: m
    for m in [
        Metric(
            "RequestsPerMinute",
            "Requests Per Minute",
            "Scoring requests answered, by deployment and status code class (2xx, 3xx, 4xx, "
            "5xx). Total: in the interval; Average: per minute.",
            "Count",
            _COUNTED,
            AVERAGE,
            (DEPLOYMENT, STATUS_CODE_CLASS),
            _per_minute(_requests),
        ),
        Metric(
            "RequestLatency",
            "Request Latency",
            "Mean time from a request reaching the router to its answer.",
            "MilliSeconds",
            (AVERAGE,),
            AVERAGE,
            (DEPLOYMENT,),
            lambda totals, aggregation, minutes, status_class: totals.mean_latency_ms(),
        ),
        *(
            Metric(
                f"RequestLatency_P{p}",
                f"Request Latency P{p}",
                f"The {p}th percentile of request latency, interpolated within the "
                "router's latency histogram buckets.",
                "MilliSeconds",
                (AVERAGE,),
                AVERAGE,
                (DEPLOYMENT,),
                _quantile(p / 100),
            )
            for p in (50, 90, 95, 99)
        ),
        Metric(
            "DeploymentCapacity",
            "Deployment Capacity",
            _REPLICAS,
            "Count",
            _SAMPLED,
            AVERAGE,
            (DEPLOYMENT,),
            _gauge("replicas"),
        ),
        Metric(
            "ReadyReplicas",
            "Ready Replicas (Weir)",
            _REPLICAS,
            "Count",
            _SAMPLED,
            MAXIMUM,
            (DEPLOYMENT,),
            _gauge("replicas"),
        ),
        Metric(
            "QueuedRequests",
            "Queued Requests (Weir)",
            "Requests waiting in the router for a free replica (each minute's highest).",
            "Count",
            _SAMPLED,
            MAXIMUM,
            (DEPLOYMENT,),
            _gauge("queued"),
        ),
        Metric(
            "QueueTimeMs",
            "Queue Time (Weir)",
            "Mean time requests waited for a free replica (those that got one).",
            "MilliSeconds",
            (AVERAGE,),
            AVERAGE,
            (DEPLOYMENT,),
            lambda totals, aggregation, minutes, status_class: totals.mean_queue_ms(),
        ),
        Metric(
            "ThrottledRequestsPerMinute",
            "Throttled Requests Per Minute (Weir)",
            "Requests refused with 429: over a credential's quota, too many pending, or no "
            "replica free within maxQueueWait (also in RequestsPerMinute's 4xx).",
            "Count",
            _COUNTED,
            TOTAL,
            (DEPLOYMENT,),
            _per_minute(lambda totals, status_class: totals.requests["429"]),
        ),
        Metric(
            "ClientClosedRequestsPerMinute",
            "Client Closed Requests Per Minute (Weir)",
            "Requests whose client went away before the answer, counted as 499 (also in "
            "RequestsPerMinute's 4xx).",
            "Count",
            _COUNTED,
            TOTAL,
            (DEPLOYMENT,),
            _per_minute(lambda totals, status_class: totals.requests["499"]),
        ),
        Metric(
            "MirroredRequestsPerMinute",
            "Mirrored Requests Per Minute (Weir)",
            "Weir's own: copies of live requests the deployment answered as a shadow "
            "(mirrorTraffic), their answer compared with the live one. Total: in the "
            "interval; Average: per minute.",
            "Count",
            _COUNTED,
            TOTAL,
            (DEPLOYMENT,),
            _per_minute(lambda totals, status_class: totals.mirrored),
        ),
        Metric(
            "ShadowAgreement",
            "Shadow Agreement (Weir)",
            "Weir's own: the percentage of the mirrored requests whose shadow answer agreed "
            "with the live one (same status, and the same JSON within a numeric tolerance); "
            "no value where nothing was mirrored.",
            "Percent",
            (AVERAGE,),
            AVERAGE,
            (DEPLOYMENT,),
            _agreement,
        ),
    ]
}
