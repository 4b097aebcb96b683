"""Per-credential scoring quotas: a token bucket and a concurrency limit per endpoint key
(and for AMLTokens as a class), enforced across the router's processes in the shared
request slots (``slots``), and the usage each process reports to Redis.

Per request a credential with a quota costs one lock of the shared slots (the bucket's
stamp and the in-flight count are in one slot) and one more to release; one without costs
a dictionary lookup and a counter. Requests and refusals are counted per process; the
``UsageReporter`` keeps a minute of them and writes them to Redis, where the control plane
sums the processes' reports.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
import socket
import time

import redis

from contracts.routing import USAGE_PERIOD, USAGE_STALE, QuotaRoute, usage_key
from dataplane.router import metrics
from dataplane.router.slots import SharedCounters, admit, available

log = logging.getLogger("weir.router")

NO_QUOTA = QuotaRoute()
# How many USAGE_PERIODs of counts a report covers: the last minute.
WINDOW = round(60 / USAGE_PERIOD)


class Quota:
    """One credential of one endpoint, in this process: its limits as last seen in the
    routing table, its shared slot, and what this process counted."""

    __slots__ = (
        "counters",
        "name",
        "endpoint",
        "workspace",
        "credential",
        "entry",
        "settings",
        "interval",
        "burst",
        "concurrency",
        "requests",
        "throttled",
        "in_flight",
        "history",
        "reported",
        "_metrics",
    )

    def __init__(self, counters: SharedCounters, workspace: str, endpoint: str, credential: str):
        self.counters = counters
        self.name = f"quota:{workspace.lower()}/{endpoint.lower()}:{credential}"
        self.workspace, self.endpoint, self.credential = workspace, endpoint, credential
        self.entry = None  # the routing entry ``settings`` were read from
        self.settings: QuotaRoute | None = None
        self.interval = 0  # ns per token; 0: no rate limit
        self.burst = 0
        self.concurrency = 0  # 0: no concurrency limit
        # Since this process started: requests admitted, requests refused by the quota.
        self.requests = self.throttled = 0
        self.in_flight = 0  # this process's requests holding a concurrency slot
        # (requests, throttled) at each of the last WINDOW reports, oldest first.
        self.history: collections.deque = collections.deque([(0, 0)], maxlen=WINDOW + 1)
        self.reported = False  # the last report had something to say
        self._metrics: dict[str, object] = {}

    def configure(self, settings: QuotaRoute | None) -> None:
        settings = settings or NO_QUOTA
        if settings == self.settings:
            return
        self.settings = settings
        rate = settings.requests_per_second
        self.interval = round(1e9 / rate) if rate else 0
        self.burst = settings.burst or max(1, -int(-(rate or 0) // 1))
        self.concurrency = settings.max_concurrent_requests or 0

    @property
    def limited(self) -> bool:
        return bool(self.interval or self.concurrency)

    def acquire(self) -> tuple[str, float] | None:
        """Take a token and a concurrency place, or neither: then (why, seconds until it is
        worth trying again)."""
        counters = self.counters
        with counters.lock:
            slot = counters.slot(self.name)
            if self.concurrency and counters.total(slot) >= self.concurrency:
                refused = ("concurrency", 1.0)
            else:
                refused = None
                if self.interval:
                    now = time.monotonic_ns()
                    stamp, wait = admit(counters.stamps[slot], now, self.interval, self.burst)
                    if wait:
                        refused = ("rate", wait / 1e9)
                    else:
                        counters.stamps[slot] = stamp
                if refused is None and self.concurrency:
                    counters.add(slot, 1)
        if refused is not None:
            self.throttled += 1
            counter = self._metrics.get(refused[0])
            if counter is None:
                counter = self._metrics[refused[0]] = metrics.QUOTA_THROTTLED.labels(
                    self.endpoint, self.credential, refused[0]
                )
            counter.inc()
            return refused
        self.requests += 1
        if self.concurrency:
            self.in_flight += 1
        return None

    def release(self) -> None:
        """A request ``acquire`` admitted with a concurrency place is answered (or gone)."""
        counters = self.counters
        with counters.lock:
            counters.add(counters.slot(self.name), -1)
        self.in_flight -= 1

    def tokens(self) -> int | None:
        """Whole tokens in the bucket now (shared by the processes), or None: no rate."""
        if not self.interval:
            return None
        counters = self.counters
        with counters.lock:
            stamp = counters.stamps[counters.slot(self.name)]
        return available(stamp, time.monotonic_ns(), self.interval, self.burst)

    def report(self, at: float) -> dict | None:
        """This process's usage over the last minute, or None when there is nothing to say
        (nothing counted in the window, nothing in flight, and that already reported)."""
        self.history.append((self.requests, self.throttled))
        oldest = self.history[0]
        requests = self.requests - oldest[0]
        throttled = self.throttled - oldest[1]
        active = bool(requests or throttled or self.in_flight)
        if not active and not self.reported:
            return None
        self.reported = active
        return {
            "requestsLastMinute": requests,
            "throttledLastMinute": throttled,
            "inFlight": self.in_flight,
            "availableTokens": self.tokens(),
            "at": at,
        }


class UsageReporter:
    """Every USAGE_PERIOD, write each endpoint's usage by credential, as this process
    counted it, to the endpoint's USAGE hash (a field per process, expiring with it)."""

    def __init__(self, app, redis_url: str):
        self.app = app
        self.client = redis.Redis.from_url(redis_url, socket_timeout=2)
        self.process = f"{socket.gethostname()}:{os.getpid()}"

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(USAGE_PERIOD)
            reports = self.reports(time.time())
            if reports:
                await loop.run_in_executor(None, self._write, reports)

    def reports(self, at: float) -> dict[str, dict]:
        """By usage key: {credential: usage} of the quotas with something to report."""
        reports: dict[str, dict] = {}
        for quota in list(self.app.quotas.values()):
            usage = quota.report(at)
            if usage is not None:
                key = usage_key(quota.workspace, quota.endpoint)
                reports.setdefault(key, {})[quota.credential] = usage
        return reports

    def _write(self, reports: dict[str, dict]) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            for key, usage in reports.items():
                pipe.hset(key, self.process, json.dumps(usage))
                # The whole hash goes once no process has reported for a while; a gone
                # process's field in a live hash is ignored by its age (USAGE_STALE).
                pipe.pexpire(key, int(USAGE_STALE * 2000))
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not report scoring usage (%s); scoring goes on", exc)
