"""Scoring metrics fresh to about a second: the minutes stored in Postgres added to those the
routers are still reporting to Redis (not yet collected: the current minute, and a finished
one until ``weir.collect_metrics`` takes it), for decisions that cannot wait for a minute to
end (a rollout's gates).

Minutes are the finest grain stored, so a window that starts within a minute is read as a
difference: ``snapshot`` the deployments' totals when the window starts, and later
``since(snapshot)`` is what was counted after it, fresh to the routers' report period
(contracts.metrics.REPORT_PERIOD). While the collector moves a minute from Redis to Postgres
(between its Redis transaction and its commit) that minute is briefly in neither: a
difference that would go below zero is reported as ``None`` (read again shortly).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from contracts.metrics import MINUTE, metrics_key, minute_of
from controlplane.core.services import routing
from controlplane.metrics import store
from controlplane.metrics.aggregates import MINUTE as MINUTE_SPAN
from controlplane.metrics.aggregates import STATUSES, Totals, aggregate

# Totals' counters and sums besides requests and latency buckets (added and subtracted).
SUMMED = ("latency_seconds", "queue_ms", "queue_count", "mirrored", "mirror_agreed")


def totals(deployment_ids: Iterable[uuid.UUID], since: float, now: float | None = None):
    """By deployment id: everything counted in the minutes from the one holding ``since``
    (Unix time) up to now, stored or still in Redis. Raises redis.RedisError when Redis
    cannot be read."""
    ids = [uuid.UUID(str(i)) for i in deployment_ids]
    now = time.time() if now is None else now
    first = minute_of(since)
    start = datetime.fromtimestamp(first, UTC)
    end = datetime.fromtimestamp(minute_of(now) + MINUTE, UTC)
    stored = aggregate(ids, start, end, max(end - start, MINUTE_SPAN))
    found = {pk: stored.get((pk, start)) or Totals() for pk in ids}
    minutes = range(first, minute_of(now) + 1, MINUTE)
    pipe = routing.client().pipeline(transaction=False)
    keys = [(minute, pk) for minute in minutes for pk in ids]
    for minute, pk in keys:
        pipe.hgetall(metrics_key(minute, str(pk)))
    for (minute, pk), fields in zip(keys, pipe.execute(), strict=True):
        if fields:
            parsed = store.parse(minute, str(pk), fields)
            if parsed is not None:
                found[pk].add(_totals_of(parsed))
    return found


def _totals_of(minute: store.Minute) -> Totals:
    totals = Totals(latency_buckets=list(minute.latency_buckets))
    for column, value in minute.values.items():
        if column.startswith("requests_"):
            totals.requests[column.removeprefix("requests_")] = int(value)
        elif hasattr(totals, column):
            setattr(totals, column, value)
    return totals


def snapshot(found: dict[uuid.UUID, Totals]) -> dict:
    """``totals`` as JSON, to keep (a window's start)."""
    return {
        str(pk): {
            "requests": dict(t.requests),
            "latencyBuckets": list(t.latency_buckets),
            **{name: getattr(t, name) for name in SUMMED},
        }
        for pk, t in found.items()
    }


def since(found: dict[uuid.UUID, Totals], then: dict) -> dict[uuid.UUID, Totals | None]:
    """What ``found`` (totals read now) adds to ``then`` (a snapshot of the same window's
    start); None for a deployment whose counts went down (a minute being collected)."""
    out: dict[uuid.UUID, Totals | None] = {}
    for pk, now in found.items():
        before = then.get(str(pk))
        if before is None:
            out[pk] = now
            continue
        diff = Totals(
            requests={s: now.requests[s] - before["requests"].get(s, 0) for s in STATUSES},
            latency_buckets=[
                a - b for a, b in zip(now.latency_buckets, before["latencyBuckets"], strict=True)
            ],
        )
        for name in SUMMED:
            setattr(diff, name, getattr(now, name) - before.get(name, 0))
        negative = any(v < 0 for v in diff.requests.values()) or any(
            v < 0 for v in diff.latency_buckets
        )
        negative = negative or any(getattr(diff, name) < -1e-9 for name in SUMMED)
        out[pk] = None if negative else diff
    return out
