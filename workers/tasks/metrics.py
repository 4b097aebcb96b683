"""Scoring metrics from the routers' reports in Redis into Postgres, and the retention."""

from __future__ import annotations

import logging
import time

import redis

from contracts.metrics import (
    KEY_TTL,
    LATENCY_SUM,
    MINUTE,
    QUEUE_SUM,
    QUEUED,
    RAISE_TO,
    READY_REPLICAS,
    REPORT_GRACE,
    index_key,
    metrics_key,
    minute_of,
)
from controlplane.core.services import routing
from controlplane.metrics import store
from workers.decorators import periodic_task

log = logging.getLogger(__name__)


@periodic_task("weir.collect_metrics")
def collect_metrics() -> int:
    """Move every complete minute the routers reported (ended REPORT_GRACE ago, not yet
    expired) into Postgres, then delete minutes past the retention. Returns the rows
    written. Safe to run again or at once: each minute's hash is taken and deleted in one
    transaction, so no report is added twice, and one that comes after is added to the row
    by a later run."""
    try:
        written = collect(routing.client(), time.time())
    except redis.RedisError as exc:
        log.warning("scoring metrics not collected (%s); the next run takes them", exc)
        written = 0
    store.prune()
    return written


def collect(client: redis.Redis, now: float) -> int:
    last = minute_of(now - MINUTE - REPORT_GRACE)
    minutes = range(minute_of(now - KEY_TTL), last + 1, MINUTE)
    pipe = client.pipeline(transaction=True)
    for minute in minutes:
        pipe.smembers(index_key(minute))
        pipe.delete(index_key(minute))
    found = pipe.execute()[::2]
    keys = [
        (minute, member.decode())
        for minute, members in zip(minutes, found, strict=True)
        for member in members
    ]
    if not keys:
        return 0
    pipe = client.pipeline(transaction=True)
    for minute, deployment_id in keys:
        pipe.hgetall(metrics_key(minute, deployment_id))
        pipe.delete(metrics_key(minute, deployment_id))
    reports = pipe.execute()[::2]
    parsed = [
        store.parse(minute, deployment_id, fields)
        for (minute, deployment_id), fields in zip(keys, reports, strict=True)
        if fields
    ]
    try:
        return store.add([m for m in parsed if m is not None])
    except Exception:
        # Taken from Redis but not stored: give them back for the next run.
        put_back(client, keys, reports)
        raise


def put_back(client: redis.Redis, keys: list[tuple[int, str]], reports: list[dict]) -> None:
    raise_to = client.register_script(RAISE_TO)
    pipe = client.pipeline(transaction=False)
    for (minute, deployment_id), fields in zip(keys, reports, strict=True):
        if not fields:
            continue
        key = metrics_key(minute, deployment_id)
        for field, value in fields.items():
            name = field.decode()
            if name in (READY_REPLICAS, QUEUED):
                raise_to(keys=[key], args=[name, value], client=pipe)
            elif name in (LATENCY_SUM, QUEUE_SUM):
                pipe.hincrbyfloat(key, name, float(value))
            else:
                pipe.hincrby(key, name, int(value))
        pipe.expire(key, KEY_TTL)
        pipe.sadd(index_key(minute), deployment_id)
        pipe.expire(index_key(minute), KEY_TTL)
    try:
        pipe.execute()
    except redis.RedisError as exc:
        log.error("scoring metrics of %d minute(s) lost: %s", len(keys), exc)
