"""Reading the per-minute metrics: totals over a window for many endpoints at once
(``endpoint_summaries``, the portal's overview) and time series (``series``, charts). Each
is one aggregate query over the minutes' rows (``aggregates``), whatever the number of
endpoints or minutes."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.utils import timezone

from controlplane.core.models import OnlineDeployment, OnlineEndpoint
from controlplane.metrics.aggregates import MINUTE, Totals, added, aggregate, spans
from controlplane.metrics.definitions import METRICS


#
# The overview: totals over a window
#
@dataclass
class Summary:
    """Scoring over a window. Rates are shares of the requests (None without requests);
    latencies in milliseconds (None without requests); ``replicas``: ready replicas in the
    latest minute sampled (None: never sampled). ``mirrored``: copies of live requests the
    deployment answered as a shadow, compared with the live answer; ``agreement``: the share
    of them that agreed (None: nothing mirrored)."""

    requests: int
    requests_per_second: float
    server_error_rate: float | None  # 5xx
    client_error_rate: float | None  # 4xx (429 and 499 included)
    throttled: int  # 429s
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    mean_latency_ms: float | None
    mean_queue_ms: float | None
    replicas: int | None
    mirrored: int
    agreement: float | None
    mirror_dropped: int  # copies not sent: too many in flight

    @classmethod
    def of(cls, totals: Totals, seconds: float) -> Summary:
        count = totals.total
        return cls(
            requests=count,
            requests_per_second=count / seconds if seconds > 0 else 0.0,
            server_error_rate=totals.requests["5xx"] / count if count else None,
            client_error_rate=totals.requests["4xx"] / count if count else None,
            throttled=totals.requests["429"],
            p50_ms=totals.latency_ms(0.5),
            p90_ms=totals.latency_ms(0.9),
            p99_ms=totals.latency_ms(0.99),
            mean_latency_ms=totals.mean_latency_ms(),
            mean_queue_ms=totals.mean_queue_ms(),
            replicas=totals.replicas_latest,
            mirrored=totals.mirrored,
            agreement=totals.agreement(),
            mirror_dropped=totals.mirror_dropped,
        )


@dataclass
class EndpointSummary(Summary):
    """An endpoint's summary (its deployments' added) and each deployment's, by name."""

    deployments: dict[str, Summary] = field(default_factory=dict)


def endpoint_summaries(
    endpoints: Iterable[OnlineEndpoint], since: datetime, until: datetime | None = None
) -> dict[uuid.UUID, EndpointSummary]:
    """By endpoint id: scoring over the minutes from ``since`` (inclusive) to ``until``
    (default: now), for the endpoint and for each of its deployments (every deployment
    listed, with zeros when it served nothing). Two queries, whatever the number of
    endpoints. Requests/s divides by the whole window."""
    until = until or timezone.now()
    endpoint_ids = [e.pk for e in endpoints]
    deployments = list(
        OnlineDeployment.objects.filter(endpoint_id__in=endpoint_ids).values_list(
            "pk", "endpoint_id", "name"
        )
    )
    window = until - since
    found = aggregate([pk for pk, _, _ in deployments], since, until, max(window, MINUTE))
    seconds = window.total_seconds()
    endpoint_totals = {pk: Totals() for pk in endpoint_ids}
    per_deployment: dict[uuid.UUID, dict[str, Summary]] = {pk: {} for pk in endpoint_ids}
    for pk, endpoint_id, name in deployments:
        totals = found.get((pk, since)) or Totals()
        endpoint_totals[endpoint_id].add(totals)
        per_deployment[endpoint_id][name] = Summary.of(totals, seconds)
    return {
        pk: EndpointSummary(
            **vars(Summary.of(endpoint_totals[pk], seconds)), deployments=per_deployment[pk]
        )
        for pk in endpoint_ids
    }


#
# Time series
#
def series(
    deployments: OnlineDeployment | Iterable[OnlineDeployment],
    metric: str,
    start: datetime,
    end: datetime,
    interval: timedelta = MINUTE,
    aggregation: str | None = None,
    status_class: str | None = None,
) -> list[tuple[datetime, float | None]]:
    """``metric`` (a name of ``definitions.METRICS``, such as "RequestsPerMinute" or
    "RequestLatency_P99") of the deployments together, one point per ``interval`` from
    ``start`` (the start of each span) until ``end``: counts are 0 where nothing was
    counted, latencies and gauges None. ``aggregation`` (Total, Average, Minimum,
    Maximum): the metric's primary one by default; ``status_class`` ("5xx"): only the
    requests of that class, for the metrics split by statusCodeClass."""
    if isinstance(deployments, OnlineDeployment):
        deployments = [deployments]
    ids = [d.pk for d in deployments]
    found = aggregate(ids, start, end, interval)
    return points(found, ids, metric, start, end, interval, aggregation, status_class)


def points(
    found: dict,
    ids: list,
    metric: str,
    start: datetime,
    end: datetime,
    interval: timedelta = MINUTE,
    aggregation: str | None = None,
    status_class: str | None = None,
) -> list[tuple[datetime, float | None]]:
    """``series`` of the deployments ``ids`` from what ``aggregate`` found for them (and
    maybe others) over the same spans: one query serves several metrics."""
    definition = METRICS[metric]
    aggregation = aggregation or definition.primary
    found_points = []
    for span in spans(start, end, interval):
        totals = added(found.get((pk, span)) for pk in ids)
        minutes = (min(span + interval, end) - span) / MINUTE
        found_points.append((span, definition.value(totals, aggregation, minutes, status_class)))
    return found_points
