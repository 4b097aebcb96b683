"""Per-minute scoring metrics by deployment, reported to Redis for the control plane to keep
(``contracts.metrics``): what the metrics API and the admin portal chart.

A request routed to a deployment carries that deployment's ``Meter`` (found once, when it is
routed); answering it adds to the meter's list of counts, and the load sampler raises its
gauges. A copy mirrored to a shadow deployment is counted on the shadow's meter once its
answer was compared with the live one. Every REPORT_PERIOD the ``MinuteReporter`` takes
what was added since and writes it to the minute's hash in one pipeline. Scoring never
waits on Redis: without it, reports are dropped (and that is logged once).
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_left
from typing import NamedTuple

import redis

from contracts.metrics import (
    CLIENT_CLOSED,
    KEY_TTL,
    LATENCY,
    LATENCY_BUCKETS,
    LATENCY_SUM,
    MINUTE,
    MIRROR_AGREED,
    MIRROR_DROPPED,
    MIRRORED,
    QUEUE_COUNT,
    QUEUE_SUM,
    QUEUED,
    RAISE_TO,
    READY_REPLICAS,
    REPORT_PERIOD,
    REQUESTS,
    STATUS_CLASSES,
    THROTTLED,
    index_key,
    metrics_key,
    minute_of,
)

log = logging.getLogger("weir.router")

# The hash field of each place in ``Meter.counts``: requests by status class (2xx at 0),
# 429s, 499s, the latency buckets, then the mirrored copies (as the shadow deployment).
FIELDS = (
    *(REQUESTS.format(c) for c in STATUS_CLASSES),
    REQUESTS.format(THROTTLED),
    REQUESTS.format(CLIENT_CLOSED),
    *(LATENCY.format(i) for i in range(len(LATENCY_BUCKETS) + 1)),
    MIRRORED,
    MIRROR_AGREED,
    MIRROR_DROPPED,
)
THROTTLED_AT = len(STATUS_CLASSES)
CLIENT_CLOSED_AT = THROTTLED_AT + 1
LATENCY_AT = CLIENT_CLOSED_AT + 1
MIRRORED_AT = LATENCY_AT + len(LATENCY_BUCKETS) + 1
MIRROR_AGREED_AT = MIRRORED_AT + 1
MIRROR_DROPPED_AT = MIRROR_AGREED_AT + 1


class Report(NamedTuple):
    """What one process adds to one deployment's minute."""

    minute: int
    deployment_id: str
    counts: dict[str, int]
    sums: dict[str, float]
    gauges: dict[str, int]


class Meter:
    """One deployment's current minute in this process: counts added since they were last
    taken, and the gauges' highest values in the minute."""

    __slots__ = (
        "deployment_id",
        "minute",
        "ends",
        "counts",
        "latency_sum",
        "queue_sum",
        "queue_count",
        "replicas",
        "queued",
        "sent",
        "ended",
    )

    def __init__(self, deployment_id: str):
        self.deployment_id = deployment_id
        self.minute = self.ends = 0
        self.ended: list[Report] = []  # minutes that ended before they were taken
        self._clear()
        self.replicas = self.queued = -1  # not sampled this minute
        self.sent = (-1, -1)  # the gauges as last reported this minute

    def _clear(self) -> None:
        self.counts = [0] * len(FIELDS)
        self.latency_sum = self.queue_sum = 0.0
        self.queue_count = 0

    def _turn(self, now: float) -> None:
        report = self._report()
        if report is not None:
            self.ended.append(report)
        self._clear()
        self.replicas = self.queued = -1
        self.sent = (-1, -1)
        self.minute = minute_of(now)
        self.ends = self.minute + MINUTE

    def count(self, status: int, seconds: float, queued_ms: float | None) -> None:
        """An answered request: its status, its time in the router, and how long it waited
        for a free replica (None: it never got one)."""
        now = time.time()
        if now >= self.ends:
            self._turn(now)
        counts = self.counts
        if 200 <= status < 600:
            counts[status // 100 - 2] += 1
            if status == 429:
                counts[THROTTLED_AT] += 1
            elif status == 499:
                counts[CLIENT_CLOSED_AT] += 1
        counts[LATENCY_AT + bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        if queued_ms is not None:
            self.queue_sum += queued_ms
            self.queue_count += 1

    def mirrored(self, agreed: bool) -> None:
        """A copy of a live request sent to this (shadow) deployment, its answer compared
        with the live one: ``agreed`` when they were the same."""
        now = time.time()
        if now >= self.ends:
            self._turn(now)
        self.counts[MIRRORED_AT] += 1
        if agreed:
            self.counts[MIRROR_AGREED_AT] += 1

    def mirror_dropped(self) -> None:
        """A copy for this (shadow) deployment not sent: too many in flight."""
        now = time.time()
        if now >= self.ends:
            self._turn(now)
        self.counts[MIRROR_DROPPED_AT] += 1

    def sample(self, replicas: int, queued: int) -> None:
        """The deployment's ready replicas and requests waiting for one, now."""
        now = time.time()
        if now >= self.ends:
            self._turn(now)
        self.replicas = max(self.replicas, replicas)
        self.queued = max(self.queued, queued)

    def take(self, now: float) -> list[Report]:
        """What was added since the last take, by minute (and zeroed here)."""
        if now >= self.ends:
            self._turn(now)
        reports, self.ended = self.ended, []
        report = self._report()
        if report is not None:
            reports.append(report)
        self._clear()
        return reports

    def _report(self) -> Report | None:
        counts = {FIELDS[i]: n for i, n in enumerate(self.counts) if n}
        if self.queue_count:
            counts[QUEUE_COUNT] = self.queue_count
        sums = {}
        if self.latency_sum:
            sums[LATENCY_SUM] = self.latency_sum
        if self.queue_sum:
            sums[QUEUE_SUM] = self.queue_sum
        gauges = {}
        # A gauge is written when it rose in the minute: about once a minute each.
        if self.replicas > self.sent[0]:
            gauges[READY_REPLICAS] = self.replicas
        if self.queued > self.sent[1]:
            gauges[QUEUED] = self.queued
        self.sent = (self.replicas, self.queued)
        if not (counts or sums or gauges):
            return None
        return Report(self.minute, self.deployment_id, counts, sums, gauges)


class MinuteReporter:
    """Every REPORT_PERIOD, add what this process's meters counted to Redis."""

    def __init__(self, app, redis_url: str):
        self.app = app
        self.client = redis.Redis.from_url(redis_url, socket_timeout=2)
        self.raise_to = self.client.register_script(RAISE_TO)
        self.failing = False

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(REPORT_PERIOD)
            reports = self.reports(time.time())
            if reports:
                await loop.run_in_executor(None, self.write, reports)

    def reports(self, now: float) -> list[Report]:
        return [r for meter in list(self.app.meters.values()) for r in meter.take(now)]

    def write(self, reports: list[Report]) -> None:
        """Add ``reports`` to their minutes' hashes. On a Redis error they are dropped:
        counts are never held back for later, so an outage cannot grow the router."""
        try:
            pipe = self.client.pipeline(transaction=False)
            for report in reports:
                key = metrics_key(report.minute, report.deployment_id)
                for field, count in report.counts.items():
                    pipe.hincrby(key, field, count)
                for field, value in report.sums.items():
                    pipe.hincrbyfloat(key, field, value)
                if report.gauges:
                    pairs = [item for pair in report.gauges.items() for item in pair]
                    self.raise_to(keys=[key], args=pairs, client=pipe)
                pipe.expire(key, KEY_TTL)
                index = index_key(report.minute)
                pipe.sadd(index, report.deployment_id)
                pipe.expire(index, KEY_TTL)
            pipe.execute()
        except redis.RedisError as exc:
            if not self.failing:
                log.warning("scoring metrics not reported (%s); dropped until Redis is back", exc)
            self.failing = True
            return
        if self.failing:
            log.info("scoring metrics reach Redis again")
        self.failing = False
