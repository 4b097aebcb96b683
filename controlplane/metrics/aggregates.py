"""The per-minute rows added up in Postgres: ``aggregate`` sums a set of deployments'
minutes by span of time in one query (the latency histograms element-wise), into
``Totals``, from which every metric is computed."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection

from contracts.metrics import LATENCY_BUCKETS, STATUS_CLASSES
from controlplane.metrics.models import DeploymentMinute

MINUTE = timedelta(minutes=1)
BUCKETS = len(LATENCY_BUCKETS) + 1
STATUSES = (*STATUS_CLASSES, "429", "499")


@dataclass
class Totals:
    """A deployment's (or several's, added) minutes in one span of time."""

    requests: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    latency_buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    latency_seconds: float = 0.0
    queue_ms: float = 0.0
    queue_count: int = 0
    # Copies mirrored to the deployment as a shadow: compared, agreeing, dropped.
    mirrored: int = 0
    mirror_agreed: int = 0
    mirror_dropped: int = 0
    # Gauges over the span's minutes (each minute's highest): None when never sampled.
    # Added over deployments, they are summed (of each deployment's highest: an upper
    # bound for the maximum, as the minutes need not coincide).
    replicas_max: int | None = None
    replicas_min: int | None = None
    replicas_mean: float | None = None
    replicas_latest: int | None = None
    queued_max: int | None = None
    queued_min: int | None = None
    queued_mean: float | None = None

    @property
    def total(self) -> int:
        return sum(self.requests[c] for c in STATUS_CLASSES)

    def add(self, other: Totals) -> Totals:
        for status in STATUSES:
            self.requests[status] += other.requests[status]
        self.latency_buckets = [
            a + b for a, b in zip(self.latency_buckets, other.latency_buckets, strict=True)
        ]
        self.latency_seconds += other.latency_seconds
        self.queue_ms += other.queue_ms
        self.queue_count += other.queue_count
        self.mirrored += other.mirrored
        self.mirror_agreed += other.mirror_agreed
        self.mirror_dropped += other.mirror_dropped
        for name in GAUGE_FIELDS:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is None or theirs is None:
                setattr(self, name, theirs if mine is None else mine)
            else:
                setattr(self, name, mine + theirs)
        return self

    def latency_ms(self, quantile: float) -> float | None:
        return percentile(self.latency_buckets, quantile)

    def mean_latency_ms(self) -> float | None:
        count = sum(self.latency_buckets)
        return self.latency_seconds * 1000 / count if count else None

    def mean_queue_ms(self) -> float | None:
        return self.queue_ms / self.queue_count if self.queue_count else None

    def agreement(self) -> float | None:
        """The share of mirrored copies whose answer agreed with the live one (None:
        nothing mirrored)."""
        return self.mirror_agreed / self.mirrored if self.mirrored else None


def added(parts: Iterable[Totals | None]) -> Totals:
    """The sum of ``parts`` (None: nothing counted)."""
    totals = Totals()
    for part in parts:
        if part is not None:
            totals.add(part)
    return totals


GAUGE_FIELDS = (
    "replicas_max",
    "replicas_min",
    "replicas_mean",
    "replicas_latest",
    "queued_max",
    "queued_min",
    "queued_mean",
)


def percentile(buckets: list[int], quantile: float) -> float | None:
    """The ``quantile`` (0..1) of a latency histogram, in milliseconds, interpolated
    linearly within its bucket as Prometheus's histogram_quantile does; a quantile in the
    last bucket (slower than the last bound) is the last bound. None: no requests."""
    count = sum(buckets)
    if not count:
        return None
    rank = quantile * count
    below = 0
    for index, in_bucket in enumerate(buckets):
        if in_bucket and below + in_bucket >= rank:
            if index == len(LATENCY_BUCKETS):
                return LATENCY_BUCKETS[-1] * 1000
            lower = LATENCY_BUCKETS[index - 1] if index else 0.0
            upper = LATENCY_BUCKETS[index]
            return (lower + (upper - lower) * (rank - below) / in_bucket) * 1000
        below += in_bucket
    return LATENCY_BUCKETS[-1] * 1000


def aggregate(
    deployment_ids: Iterable[uuid.UUID], start: datetime, end: datetime, step: timedelta
) -> dict[tuple[uuid.UUID, datetime], Totals]:
    """Totals by deployment and span of ``step`` from ``start`` (the spans' starts), over
    the minutes in [start, end). One query."""
    table = DeploymentMinute._meta.db_table
    requests = ", ".join(f"SUM(requests_{s})" for s in STATUSES)
    # Each latency bucket summed by its index: a column per bucket (unnesting the arrays
    # into a row per bucket and minute cost four times as much at 400 deployments' hour).
    buckets = ", ".join(f"COALESCE(SUM(latency_buckets[{n}]), 0)" for n in range(1, BUCKETS + 1))
    sql = f"""
        SELECT deployment_id, date_bin(%(step)s, minute, %(start)s) AS span, {requests},
            SUM(latency_seconds), SUM(queue_ms), SUM(queue_count),
            SUM(mirrored), SUM(mirror_agreed), SUM(mirror_dropped),
            MAX(ready_replicas), MIN(ready_replicas), AVG(ready_replicas),
            (ARRAY_AGG(ready_replicas ORDER BY minute DESC)
                FILTER (WHERE ready_replicas IS NOT NULL))[1],
            MAX(queued), MIN(queued), AVG(queued),
            ARRAY[{buckets}]
        FROM {table}
        WHERE deployment_id = ANY(%(ids)s) AND minute >= %(start)s AND minute < %(end)s
        GROUP BY 1, 2
    """
    params = {"ids": list(deployment_ids), "start": start, "end": end, "step": step}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    found = {}
    for row in rows:
        deployment_id, span, *values = row
        counts, values = values[: len(STATUSES)], values[len(STATUSES) :]
        found[(deployment_id, span)] = Totals(
            requests={s: int(n) for s, n in zip(STATUSES, counts, strict=True)},
            latency_seconds=values[0],
            queue_ms=values[1],
            queue_count=int(values[2]),
            mirrored=int(values[3]),
            mirror_agreed=int(values[4]),
            mirror_dropped=int(values[5]),
            replicas_max=values[6],
            replicas_min=values[7],
            replicas_mean=float(values[8]) if values[8] is not None else None,
            replicas_latest=values[9],
            queued_max=values[10],
            queued_min=values[11],
            queued_mean=float(values[12]) if values[12] is not None else None,
            latency_buckets=[int(n) for n in values[13]],
        )
    return found


def spans(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """The starts of the spans of ``step`` from ``start`` that begin before ``end``."""
    count = max(0, -int(-(end - start) // step))
    return [start + step * i for i in range(count)]
