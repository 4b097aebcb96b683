"""Keeping the routers' per-minute reports: read from their Redis hash, added to the
deployment's row of that minute, and deleted past the retention."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from contracts.metrics import (
    CLIENT_CLOSED,
    LATENCY,
    LATENCY_BUCKETS,
    LATENCY_SUM,
    MIRROR_AGREED,
    MIRROR_DROPPED,
    MIRRORED,
    QUEUE_COUNT,
    QUEUE_SUM,
    QUEUED,
    READY_REPLICAS,
    REQUESTS,
    STATUS_CLASSES,
    THROTTLED,
)
from controlplane.core.models import OnlineDeployment
from controlplane.metrics.models import DeploymentMinute

BUCKETS = len(LATENCY_BUCKETS) + 1
# Row columns by hash field: the counts, then the sums.
COUNTS = {
    **{REQUESTS.format(c): f"requests_{c}" for c in STATUS_CLASSES},
    REQUESTS.format(THROTTLED): "requests_429",
    REQUESTS.format(CLIENT_CLOSED): "requests_499",
    QUEUE_COUNT: "queue_count",
    MIRRORED: "mirrored",
    MIRROR_AGREED: "mirror_agreed",
    MIRROR_DROPPED: "mirror_dropped",
}
SUMS = {LATENCY_SUM: "latency_seconds", QUEUE_SUM: "queue_ms"}
GAUGES = {READY_REPLICAS: "ready_replicas", QUEUED: "queued"}
COLUMNS = ("deployment_id", "minute", *COUNTS.values(), *SUMS.values(), "latency_buckets")
COLUMNS += tuple(GAUGES.values())
CASTS = {"latency_buckets": "::bigint[]", "ready_replicas": "::integer", "queued": "::integer"}


@dataclass
class Minute:
    """One deployment's minute as reported (or part of it: reports add up)."""

    deployment_id: uuid.UUID
    minute: datetime
    values: dict[str, float] = field(default_factory=dict)  # column -> count or sum
    latency_buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    gauges: dict[str, int] = field(default_factory=dict)


def parse(minute: int, deployment_id: str, fields: dict[bytes, bytes]) -> Minute | None:
    """A report hash (contracts.metrics), or None when its deployment id is not one of ours
    (a router of another installation sharing the Redis db)."""
    try:
        parsed = Minute(uuid.UUID(deployment_id), datetime.fromtimestamp(minute, UTC))
    except ValueError:
        return None
    for raw, value in fields.items():
        name = raw.decode()
        if name in COUNTS:
            parsed.values[COUNTS[name]] = int(value)
        elif name in SUMS:
            parsed.values[SUMS[name]] = float(value)
        elif name in GAUGES:
            parsed.gauges[GAUGES[name]] = int(float(value))
        elif name.startswith(LATENCY.format("")):
            index = int(name.rpartition(":")[2])
            if 0 <= index < BUCKETS:
                parsed.latency_buckets[index] = int(value)
    return parsed


def add(minutes: list[Minute]) -> int:
    """Add ``minutes`` to their rows (counts and sums added, gauges raised), in one
    statement; minutes of deployments that no longer exist are dropped. Returns the rows
    written."""
    ids = {m.deployment_id for m in minutes}
    existing = set(OnlineDeployment.objects.filter(pk__in=ids).values_list("pk", flat=True))
    rows = merged(m for m in minutes if m.deployment_id in existing)
    if not rows:
        return 0
    params = []
    for row in rows:
        params += [row.deployment_id, row.minute]
        params += [row.values.get(column, 0) for column in (*COUNTS.values(), *SUMS.values())]
        params.append(row.latency_buckets)
        params += [row.gauges.get(column) for column in GAUGES.values()]
    table = DeploymentMinute._meta.db_table
    one = "(" + ", ".join(f"%s{CASTS.get(c, '')}" for c in COLUMNS) + ")"
    added = [f"{c} = {table}.{c} + EXCLUDED.{c}" for c in (*COUNTS.values(), *SUMS.values())]
    raised = [f"{c} = GREATEST({table}.{c}, EXCLUDED.{c})" for c in GAUGES.values()]
    buckets = (
        "latency_buckets = ARRAY(SELECT COALESCE(a, 0) + COALESCE(b, 0) FROM "
        f"unnest({table}.latency_buckets, EXCLUDED.latency_buckets) WITH ORDINALITY "
        "AS t(a, b, n) ORDER BY n)"
    )
    sql = (
        f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES {', '.join([one] * len(rows))} "
        "ON CONFLICT (deployment_id, minute) DO UPDATE SET " + ", ".join([*added, buckets, *raised])
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    return len(rows)


def merged(minutes) -> list[Minute]:
    """One Minute per deployment and minute (an INSERT may not update a row twice)."""
    by_key: dict[tuple, Minute] = {}
    for minute in minutes:
        into = by_key.get((minute.deployment_id, minute.minute))
        if into is None:
            by_key[(minute.deployment_id, minute.minute)] = minute
            continue
        for column, value in minute.values.items():
            into.values[column] = into.values.get(column, 0) + value
        into.latency_buckets = [
            a + b for a, b in zip(into.latency_buckets, minute.latency_buckets, strict=True)
        ]
        for column, value in minute.gauges.items():
            into.gauges[column] = max(into.gauges.get(column, value), value)
    return list(by_key.values())


def prune(now: datetime | None = None) -> int:
    """Delete the minutes older than WEIR_METRICS_RETENTION_DAYS. Returns how many."""
    oldest = (now or timezone.now()) - timedelta(days=settings.WEIR_METRICS_RETENTION_DAYS)
    deleted, _ = DeploymentMinute.objects.filter(minute__lt=oldest).delete()
    return deleted
