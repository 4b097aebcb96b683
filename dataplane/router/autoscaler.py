"""The autoscaler, as azureml-fe runs it, for deployments with TargetUtilization scaling.

utilization = (busy replicas + queued requests) / ready replicas, averaged over the
deployment's ``pollingInterval`` and compared with ``targetUtilizationPercentage``. The
wanted count is ``ceil(instances * utilization / target)`` within min..max instances. Up is
eager (the first interval above target scales); down is conservative (only after the load
stayed low for ``scale_down_delay`` seconds, to the highest count wanted meanwhile).

Scale to zero (beyond Azure): with ``minInstances: 0`` utilization alone never removes the
last replica; it goes once no request arrived for the deployment's ``scaleToZeroAfter``.
From zero, the router holds the requests that arrive (``RouterApp``) and the ``Activator``
asks for replicas on the same path as a scale decision: one ScaleUp message per deployment
(a Redis key taken with NX makes one router process the sender), for
``ceil(waiting / maxConcurrentRequestsPerInstance)`` replicas at most, within maxInstances.

Every serving process reports its load to Redis (``LoadReporter``); one autoscaler per
installation (a Redis lease elects it among routers) reads the sum and sends each decision
to the control plane as the ``weir.autoscale`` task, which records it as a scale event and
scales through the same operation a PATCH of ``sku.capacity`` starts. Decisions not to
scale while at maxInstances are sent too, so a user can see why nothing happened. If Redis
is unreachable nothing scales; scoring does not depend on any of this.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import redis

from contracts.routing import AutoscaleRoute, DeploymentRoute, EndpointRoute
from dataplane.router import metrics

log = logging.getLogger("weir.router.autoscaler")

# Per deployment id: one field per serving process, its average load over REPORT_PERIOD.
LOAD_KEY = "weir:load:{}"
LEADER_KEY = "weir:autoscaler:leader"
# Per deployment id: held by the router process that sent the activation, for ACTIVATE_RETRY
# seconds (or until a replica is ready): the other processes and routers send none meanwhile.
ACTIVATE_KEY = "weir:activate:{}"
# Requests still held this long after an activation was sent (the worker refused it, say,
# because the deployment was still scaling in): it is sent again.
ACTIVATE_RETRY = 3.0
SAMPLE_PERIOD = 0.1
REPORT_PERIOD = 0.5
# A process's report older than this is ignored (the process is gone).
REPORT_TTL = 3.0
TICK = 0.25
LEASE = 3.0
# After a scale decision, wait this long at most for the new count to be ready.
AWAIT_LIMIT = 60.0
# While the deployment stays at maxInstances under load, repeat the event this often.
AT_MAX_REPEAT = 60.0
TASK = "weir.autoscale"


class LoadReporter:
    """In each serving process, every SAMPLE_PERIOD: set the in-flight, queued and replica
    gauges of each deployment (Prometheus's, and its per-minute meter's), and sum the load
    of autoscaled ones, whose averages go to Redis every REPORT_PERIOD."""

    def __init__(self, app, redis_url: str):
        self.app = app
        self.client = redis.Redis.from_url(redis_url, socket_timeout=2)
        self.process = f"{socket.gethostname()}:{os.getpid()}"
        self.sums: dict[str, list[float]] = {}
        self.gauges: dict[tuple, tuple] = {}
        self.arrived: dict[str, int] = {}  # deployment id -> Load.arrived as last sampled

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        samples = 0
        while True:
            await asyncio.sleep(SAMPLE_PERIOD)
            self._sample()
            samples += 1
            if samples * SAMPLE_PERIOD >= REPORT_PERIOD:
                reports, self.sums = self._reports(samples), {}
                samples = 0
                if reports:
                    await loop.run_in_executor(None, self._write, reports)

    def _sample(self) -> None:
        for load in list(self.app.loads.values()):
            settings = load.settings
            queued = max(load.admitted - load.in_flight, 0)
            labels = (load.endpoint, load.deployment)
            gauges = self.gauges.get(labels)
            if gauges is None:
                gauges = self.gauges[labels] = (
                    metrics.IN_FLIGHT.labels(*labels),
                    metrics.QUEUED.labels(*labels),
                    metrics.REPLICAS.labels(*labels),
                )
            gauges[0].set(load.in_flight)
            gauges[1].set(queued)
            gauges[2].set(len(settings.replicas))
            # The minute's metrics count what waits in the whole router, not this process.
            self.app.meter(settings.id).sample(len(settings.replicas), load.waiting_in_router())
            if settings.autoscale is None:
                continue
            busy = load.in_flight / settings.max_concurrent_requests_per_instance
            sums = self.sums.setdefault(settings.id, [0.0, 0.0, 0])
            sums[0] += busy
            sums[1] += queued
            sums[2] += load.arrived - self.arrived.get(settings.id, 0)
            self.arrived[settings.id] = load.arrived

    def _reports(self, samples: int) -> dict[str, str]:
        now = time.time()
        return {
            deployment_id: json.dumps(
                {
                    "busy": busy / samples,
                    "queued": queued / samples,
                    "requests": requests,
                    "at": now,
                }
            )
            for deployment_id, (busy, queued, requests) in self.sums.items()
        }

    def _write(self, reports: dict[str, str]) -> None:
        try:
            pipe = self.client.pipeline(transaction=False)
            for deployment_id, report in reports.items():
                key = LOAD_KEY.format(deployment_id)
                pipe.hset(key, self.process, report)
                pipe.pexpire(key, int(REPORT_TTL * 1000))
            pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not report load (%s); autoscaling waits for Redis", exc)


@dataclass
class Decision:
    action: str
    to_instances: int
    reason: str


@dataclass
class Tracker:
    """What the autoscaler remembers of one deployment between polls."""

    window_started: float
    utilizations: list[float]
    busy: list[float]
    queued: list[float]
    low_since: float | None = None
    low_peak: int = 0
    at_max_reported: float | None = None
    awaiting: int | None = None
    awaiting_since: float = 0.0
    requests: int = 0  # requests that arrived in the window (seen in any report)
    idle_since: float | None = None


def decide(
    scale: AutoscaleRoute,
    tracker: Tracker,
    current: int,
    utilization: float,
    now: float,
    delay: float,
    idle: bool = False,
) -> Decision | None:
    """The decision for one polling interval (None: nothing to do or to report). ``idle``:
    no request arrived for the deployment in the interval."""
    low, high = scale.min_instances, scale.max_instances
    target = scale.target_utilization_percentage
    if not low <= current <= high:
        count = min(max(current, low), high)
        action = "ScaleUp" if count > current else "ScaleDown"
        return Decision(action, count, f"{current} instance(s) is outside {low}..{high}")
    if low == 0 and current > 0:
        if not idle:
            tracker.idle_since = None
        else:
            if tracker.idle_since is None:
                tracker.idle_since = now - scale.polling_interval  # this interval was idle
            window = scale.scale_to_zero_after
            if now - tracker.idle_since >= window:
                tracker.idle_since = None
                tracker.low_since, tracker.low_peak = None, 0
                reason = f"no requests for {window:g} s (scaleToZeroAfter): scaled to zero"
                return Decision("ScaleDown", 0, reason)
    wanted = math.ceil(round(current * utilization / target, 6))
    described = f"utilization {utilization:.0f}% against a target of {target}%"
    if wanted > current:
        tracker.low_since, tracker.low_peak = None, 0
        if current < high:
            tracker.at_max_reported = None
            count = min(wanted, high)
            return Decision("ScaleUp", count, f"{described}: {wanted} instance(s) wanted")
        if tracker.at_max_reported is None or now - tracker.at_max_reported >= AT_MAX_REPEAT:
            tracker.at_max_reported = now
            return Decision(
                "AtMaxInstances",
                current,
                f"{described}: {wanted} instance(s) wanted, maxInstances is {high}",
            )
        return None
    tracker.at_max_reported = None
    # Utilization never removes the last replica: going to zero is for idleness (above).
    floor = max(low, 1)
    if wanted >= current or current <= floor:
        tracker.low_since, tracker.low_peak = None, 0
        return None
    if tracker.low_since is None:
        tracker.low_since = now
    tracker.low_peak = max(tracker.low_peak, wanted)
    if now - tracker.low_since < delay:
        return None
    count = max(tracker.low_peak, floor)
    tracker.low_since, tracker.low_peak = None, 0
    return Decision("ScaleDown", count, f"{described} for {delay:g} s: {count} instance(s) suffice")


class Autoscaler:
    """One thread per router process; only the process holding the Redis lease decides."""

    def __init__(self, table, redis_url: str, broker_url: str, queue: str, delay: float):
        self.table = table
        self.redis_url = redis_url
        self.broker_url = broker_url
        self.queue = queue
        self.delay = delay
        self.identity = uuid.uuid4().hex
        self.trackers: dict[str, Tracker] = {}
        self.sender = DecisionSender(broker_url, queue)

    def start(self) -> threading.Event:
        stop = threading.Event()
        threading.Thread(target=self.run, args=(stop,), name="autoscaler", daemon=True).start()
        return stop

    def run(self, stop: threading.Event) -> None:
        client = redis.Redis.from_url(self.redis_url, socket_timeout=2)
        while not stop.wait(TICK):
            try:
                if self._lead(client):
                    self.tick(client, time.time())
            except redis.RedisError as exc:
                log.warning("autoscaler cannot reach Redis (%s); nothing scales meanwhile", exc)
            except Exception:
                log.exception("autoscaler tick failed")

    def _lead(self, client: redis.Redis) -> bool:
        lease = int(LEASE * 1000)
        if client.set(LEADER_KEY, self.identity, nx=True, px=lease):
            return True
        if client.get(LEADER_KEY) == self.identity.encode():
            client.pexpire(LEADER_KEY, lease)
            return True
        return False

    def tick(self, client: redis.Redis, now: float) -> None:
        seen = set()
        for entry in list(self.table.entries.values()):
            for name, settings in entry.deployments.items():
                if settings.autoscale is not None:
                    seen.add(settings.id)
                    self._observe(client, entry, name, settings, now)
        for gone in set(self.trackers) - seen:
            del self.trackers[gone]

    def _observe(
        self, client, entry: EndpointRoute, name: str, settings: DeploymentRoute, now: float
    ) -> None:
        scale = settings.autoscale
        busy = queued = 0.0
        requests = 0
        for raw in client.hgetall(LOAD_KEY.format(settings.id)).values():
            report = json.loads(raw)
            if now - report["at"] <= REPORT_TTL:
                busy += report["busy"]
                queued += report["queued"]
                requests += report.get("requests", 0)
        ready = len(settings.replicas)
        utilization = 100.0 * (busy + queued) / max(ready, 1)
        metrics.UTILIZATION.labels(entry.name, name).set(utilization)
        tracker = self.trackers.get(settings.id)
        if tracker is None:
            tracker = self.trackers[settings.id] = Tracker(now, [], [], [])
        current = settings.instance_count
        if tracker.awaiting is not None:
            settled = current == tracker.awaiting and ready == tracker.awaiting
            if not settled and now - tracker.awaiting_since < AWAIT_LIMIT:
                tracker.window_started, tracker.utilizations = now, []
                tracker.busy, tracker.queued, tracker.requests = [], [], 0
                return
            tracker.awaiting = None
        # A report is read on several ticks: only whether any request came is kept.
        tracker.requests += requests
        tracker.utilizations.append(utilization)
        tracker.busy.append(busy)
        tracker.queued.append(queued)
        if now - tracker.window_started < scale.polling_interval:
            return
        average = sum(tracker.utilizations) / len(tracker.utilizations)
        inputs = {
            "utilizationPercentage": round(average, 1),
            "busyReplicas": round(sum(tracker.busy) / len(tracker.busy), 2),
            "queuedRequests": round(sum(tracker.queued) / len(tracker.queued), 2),
            "readyReplicas": ready,
        }
        idle = tracker.requests == 0 and average == 0
        tracker.window_started, tracker.utilizations = now, []
        tracker.busy, tracker.queued, tracker.requests = [], [], 0
        decision = decide(scale, tracker, current, average, now, self.delay, idle)
        if decision is None:
            return
        metrics.SCALE_DECISIONS.labels(entry.name, name, decision.action).inc()
        log.info(
            "%s/%s: %s %d -> %d (%s)",
            entry.name,
            name,
            decision.action,
            current,
            decision.to_instances,
            decision.reason,
        )
        self._send(
            settings.id,
            {
                "action": decision.action,
                "fromInstances": current,
                "toInstances": decision.to_instances,
                "targetUtilizationPercentage": scale.target_utilization_percentage,
                "minInstances": scale.min_instances,
                "maxInstances": scale.max_instances,
                "reason": decision.reason,
                "decidedAt": now,
                **inputs,
            },
        )
        # Sent: hold further decisions until the new count is ready (or AWAIT_LIMIT).
        if decision.action != "AtMaxInstances":
            tracker.awaiting, tracker.awaiting_since = decision.to_instances, now

    def _send(self, deployment_id: str, decision: dict) -> None:
        self.sender.send(deployment_id, decision)


class DecisionSender:
    """Sends decisions to the workers as the ``weir.autoscale`` task, by name through the
    Celery broker (the router imports nothing of the workers)."""

    def __init__(self, broker_url: str, queue: str):
        self.broker_url = broker_url
        self.queue = queue
        self._celery = None

    def send(self, deployment_id: str, decision: dict) -> None:
        if self._celery is None:
            from celery import Celery

            self._celery = Celery("weir-router", broker=self.broker_url)
        self._celery.send_task(
            TASK, kwargs={"deployment_id": deployment_id, "decision": decision}, queue=self.queue
        )


class Activator:
    """In each serving process: asks for replicas of a deployment at zero that has requests
    held (``activate``, called on the loop, never blocks it). Once per ACTIVATE_RETRY per
    process; across processes and routers, the one that takes ``ACTIVATE_KEY`` sends. The
    count is read when sending: the requests held for the deployment in this router's
    processes (``waiting``), so a burst that arrived meanwhile asks for what it needs."""

    def __init__(self, redis_url: str, sender: DecisionSender, waiting):
        self.client = redis.Redis.from_url(redis_url, socket_timeout=2)
        self.sender = sender
        self.waiting = waiting  # deployment id -> requests held in this router
        self.next_try: dict[str, float] = {}
        self.sent = 0  # activations this process sent (tests and logs)

    def activate(self, endpoint: str, deployment: str, settings: DeploymentRoute) -> None:
        now = time.monotonic()
        if now < self.next_try.get(settings.id, 0.0):
            return
        self.next_try[settings.id] = now + ACTIVATE_RETRY
        loop = asyncio.get_running_loop()
        loop.run_in_executor(None, self._send, endpoint, deployment, settings)

    def activated(self, settings: DeploymentRoute) -> None:
        """A replica is ready: the next time the deployment is at zero activates at once."""
        if self.next_try.pop(settings.id, None) is not None:
            asyncio.get_running_loop().run_in_executor(None, self._release, settings.id)

    def _release(self, deployment_id: str) -> None:
        try:
            self.client.delete(ACTIVATE_KEY.format(deployment_id))
        except redis.RedisError:
            pass  # it expires

    def _send(self, endpoint: str, deployment: str, settings: DeploymentRoute) -> None:
        scale = settings.autoscale
        try:
            key = ACTIVATE_KEY.format(settings.id)
            if not self.client.set(key, "1", nx=True, px=int(ACTIVATE_RETRY * 1000)):
                return
            waiting = max(self.waiting(settings.id), 1)
            count = min(
                math.ceil(waiting / settings.max_concurrent_requests_per_instance),
                scale.max_instances,
            )
            self.sender.send(
                settings.id,
                {
                    "action": "ScaleUp",
                    "fromInstances": settings.instance_count,
                    "toInstances": max(count, 1),
                    "targetUtilizationPercentage": scale.target_utilization_percentage,
                    "minInstances": scale.min_instances,
                    "maxInstances": scale.max_instances,
                    "reason": f"activated: {waiting} request(s) waiting",
                    "decidedAt": time.time(),
                    "utilizationPercentage": 100.0 * waiting,
                    "busyReplicas": 0,
                    "queuedRequests": waiting,
                    "readyReplicas": 0,
                },
            )
        except Exception as exc:  # noqa: BLE001 - held requests time out; retried meanwhile
            log.warning("%s/%s: could not ask for a replica (%s)", endpoint, deployment, exc)
            return
        self.sent += 1
        metrics.ACTIVATIONS.labels(endpoint, deployment).inc()
        log.info("%s/%s: activation sent, %d request(s) waiting", endpoint, deployment, waiting)
