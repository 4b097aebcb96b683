"""Scoring requests: find the endpoint, authenticate, pick a deployment and a replica,
forward, and say who served. Error statuses are mapped here, with a JSON body each.

All that decides where a request goes (endpoint, credential, deployment, size) is read from
its headers (``dispatch``); a refused request is answered before its body is read. The body
and the answer then stream through (``proxy.Exchange``)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import math
import os
import random
import time
from collections import deque

import jwt

from contracts.routing import (
    AML_TOKEN,
    PRIMARY_KEY,
    SECONDARY_KEY,
    TOKEN_ISSUER,
    DeploymentRoute,
    EndpointRoute,
)
from dataplane.http import REASONS
from dataplane.router import metrics
from dataplane.router.accesslog import AccessLog
from dataplane.router.comparison import same_answer
from dataplane.router.minutes import Meter
from dataplane.router.proxy import BUFFERED, CONTINUE, MAX_BODY, Exchange
from dataplane.router.quotas import Quota
from dataplane.router.slots import SharedCounters
from dataplane.router.table import RoutingTable
from dataplane.router.upstream import (
    Collected,
    Upstream,
    UpstreamBroken,
    UpstreamClosed,
    UpstreamError,
    UpstreamTimeout,
)

log = logging.getLogger("weir.router")

DEPLOYMENT_HEADER = "azureml-model-deployment"
# Not forwarded to replicas: the caller's credential, and hop-by-hop headers (an answer's
# framing is the router's own).
DROPPED = frozenset(
    {
        b"authorization",
        b"host",
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"content-length",
        b"expect",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-connection",
    }
)
# Copies to a shadow deployment in flight at once, per endpoint: a slow shadow cannot make
# the router hold more than this many extra requests (the rest are not mirrored).
MAX_MIRRORS_IN_FLIGHT = 64
# How long the request waited for a free replica, so overload is explainable client-side.
QUEUE_HEADER = "ms-azureml-queue-time-ms"
# How often a queued request looks for a slot freed by another router process.
QUEUE_POLL = 0.005
# Scale to zero: requests to a deployment at zero replicas are held, at most HOLD_MAX per
# endpoint (in all of this router's processes; more are 429) for HOLD_SECONDS (then 503),
# while a replica starts (--hold-max, --hold-seconds: defaults there too). The routing
# table is looked at every HOLD_POLL for one.
HOLD_MAX = 100
HOLD_SECONDS = 30.0
HOLD_POLL = 0.01
# Held requests answered by a replica say how long they were held.
COLD_START_HEADER = b"x-weir-cold-start-ms"
# Retry-After (seconds) of a held request that timed out: a replica is on its way.
HOLD_RETRY_AFTER = 1
# Path-based scoring URIs: /endpoints/{workspace}/{endpoint}/score (no wildcard DNS needed).
PATH_PREFIX = "/endpoints/"
# SDK v1's scoring URIs, after the endpoint's host or path-based prefix:
# /api/v1/service/{service}/score, and /api/v1/service/{service}/{version}/score for one
# version (as the azureml-model-deployment header would pick it).
V1_PREFIX = "/api/v1/service/"
# Verified AMLTokens remembered (until they expire or the signing keys change), and key
# digests of credentials seen.
TOKEN_CACHE = 10_000
# Repeated warnings about one replica: at most one line per this many seconds.
WARN_EVERY = 1.0

JSON_TYPE = b"content-type: application/json\r\n"
UNAUTHORIZED = b"www-authenticate: Bearer\r\n"
RETRY_AFTER = b"retry-after: 1\r\n"
# The credential a key digest stands for, by its place in ``key_digests``.
KEY_CREDENTIALS = (PRIMARY_KEY, SECONDARY_KEY)


class Refusal:
    """An answer of the router's own: a status and a message, sent as JSON."""

    __slots__ = ("status", "message", "head")

    def __init__(self, status: int, message: str, head: bytes = b""):
        self.status, self.message, self.head = status, message, head

    def body(self) -> bytes:
        return json.dumps({"message": self.message}).encode()


class Warnings:
    """Warnings about one thing (a replica) at most once per WARN_EVERY seconds each, with
    how many there were: a replica that went away fails every request sent to it, and the
    log should say so once a second, not a thousand times."""

    def __init__(self):
        self.seen: dict[str, list] = {}  # key -> [count since last line, last line's time]

    def warn(self, key: str, message: str, *args) -> None:
        now = time.monotonic()
        seen = self.seen.get(key)
        if seen is None:
            if len(self.seen) > 4096:
                self.seen.clear()
            seen = self.seen[key] = [0, now - WARN_EVERY]
        seen[0] += 1
        if now - seen[1] >= WARN_EVERY:
            log.warning(message + " (%d times in %.1f s)", *args, seen[0], now - seen[1])
            seen[0], seen[1] = 0, now


def _request_ids():
    """x-request-id for requests that come without one: a random per-process prefix and a
    counter, in UUID form (uuid4 per request costs a system call)."""
    prefix = os.urandom(10).hex()
    template = f"{prefix[:8]}-{prefix[8:12]}-4{prefix[12:15]}-a{prefix[15:18]}-"
    for number in itertools.count():
        yield f"{template}{number & 0xFFFFFFFFFFFF:012x}"


class LiveSink:
    """Where a replica's answer goes: to the client, with the router's headers (who served,
    time queued, the request id) and Azure's model-error mapping; a copy of up to BUFFERED
    bytes is kept when a shadow answer is to be compared with it."""

    __slots__ = ("exchange", "served_by", "request_id", "score", "copy")

    def __init__(self, exchange: Exchange, served_by: bytes, request_id: str, score: bool):
        self.exchange = exchange
        self.served_by = served_by
        self.request_id = request_id
        self.score = score
        self.copy: Collected | None = None

    def start(self, status: int, headers: list, length: int | None) -> None:
        if self.copy is not None:
            self.copy.start(status, headers, length)
        lines = []
        exchange = self.exchange
        exchange.response_id = ""
        for name, value in headers:
            lower = name.lower()
            if lower in DROPPED:
                continue
            if lower == b"x-request-id":
                exchange.response_id = value.decode("latin-1")
            lines.append(b"%s: %s\r\n" % (name, value))
        if not exchange.response_id:
            exchange.response_id = self.request_id
            lines.append(b"x-request-id: %s\r\n" % self.request_id.encode("latin-1"))
        if status >= 400 and self.score:
            # Azure's model error: the replica's own status and reason in headers.
            lines.append(
                b"ms-azureml-model-error-statuscode: %d\r\nms-azureml-model-error-reason: %s\r\n"
                % (status, REASONS.get(status, "Unknown").encode())
            )
            status = 424
        lines.append(self.served_by)
        exchange.start(status, b"".join(lines), length)

    def data(self, chunk: bytes) -> None:
        self.exchange.write(chunk)
        if self.copy is not None:
            self.copy.data(chunk)

    def end(self) -> None:
        self.exchange.end()


class RouterApp:
    def __init__(
        self,
        table: RoutingTable,
        upstream: Upstream | None = None,
        access_log: AccessLog | None = None,
        counters: SharedCounters | None = None,
        max_body: int = MAX_BODY,
        hold_max: int = HOLD_MAX,
        hold_seconds: float = HOLD_SECONDS,
    ):
        self.table = table
        self.hold_max = hold_max
        self.hold_seconds = hold_seconds
        self.holds: dict[str, Hold] = {}  # deployment id -> requests held in this process
        self.activator = None  # asks for replicas of a deployment at zero (autoscaler)
        self.counters = counters or SharedCounters(1)
        self.access_log = access_log
        self.upstream = upstream or Upstream()
        self.max_body = max_body
        self.loads: dict[tuple, Load] = {}
        self.quotas: dict[tuple, Quota] = {}  # (workspace, endpoint, credential) -> Quota
        self.meters: dict[str, Meter] = {}  # deployment id -> its per-minute metrics
        self.mirrors_in_flight: dict[tuple, int] = {}
        self.warnings = Warnings()
        self.request_ids = _request_ids()
        self._counters: dict[tuple, object] = {}
        self._latencies: dict[tuple, object] = {}
        self._retries: dict[tuple, object] = {}
        self._tokens: dict[tuple, float] = {}
        self._digests: dict[str, str] = {}  # credential -> its SHA-256, as key digests are
        self._tokens_keys: dict | None = None

    # -- from the headers -------------------------------------------------------------------
    def dispatch(self, exchange: Exchange) -> None:
        """Route ``exchange`` on its headers: refuse it at once, or start serving it."""
        exchange.began = time.perf_counter()
        try:
            refusal = self._dispatch(exchange)
        except Exception:  # a bug of ours answers 500; the router goes on
            log.exception("unexpected error routing %s", exchange.path)
            refusal = Refusal(500, "An unexpected error occurred in the router.")
        if refusal is not None:
            self.refuse(exchange, refusal)

    def _dispatch(self, exchange: Exchange) -> Refusal | None:
        """Find the endpoint by host ({endpoint}.{workspace}.{domain}) or by path
        (/endpoints/{workspace}/{endpoint}/...), read an SDK v1 path (V1_PREFIX), check the
        credential and the size, pick the deployment, and start serving; or say why not."""
        path = exchange.path
        if path.startswith(PATH_PREFIX):
            parts = path.split("/", 4)
            if len(parts) < 4:
                return Refusal(404, f"No endpoint is served at {path}.")
            entry = self.table.lookup_path(parts[2], parts[3])
            path = "/" + (parts[4] if len(parts) > 4 else "")
            if entry is None:
                return Refusal(404, f"No endpoint '{parts[3]}' in workspace '{parts[2]}'.")
        else:
            host = exchange.host.rsplit(":", 1)[0].lower()
            if path == "/healthz":
                exchange.respond(200, b"", b"ok")
                return None
            entry = self.table.lookup(host)
            if entry is None:
                return Refusal(404, f"No endpoint is served at {host}.")
        exchange.endpoint = entry.name
        requested = exchange.deployment_header
        if path.startswith(V1_PREFIX):
            parts = path[len(V1_PREFIX) :].split("/")
            if parts[0].lower() != entry.name.lower() or len(parts) not in (2, 3):
                return Refusal(404, f"No service is served at {path}.")
            path = "/" + parts[-1]
            if len(parts) == 3:
                requested = parts[1]
        credential = self._credential(entry, exchange.authorization)
        if credential is None:
            return Refusal(401, "The request is not authorized.", UNAUTHORIZED)
        if exchange.length is not None and exchange.length > self.max_body:
            return self._too_large()
        shadow = None
        if requested:
            deployment = next(
                (d for d in entry.deployments if d.lower() == requested.lower()), None
            )
            if deployment is None:
                return Refusal(404, f"Deployment '{requested}' does not exist on this endpoint.")
        else:
            deployment = self._pick(entry.traffic)
            if deployment is None:
                return Refusal(404, "The endpoint has no deployment with traffic above 0.")
            # Only requests routed by the traffic rules are mirrored, as on Azure.
            shadow = self._mirror_target(entry)
        # Counted in the deployment's minute from here on: a 429 of the credential's quota
        # too, as a refusal of the traffic it would have served.
        settings = entry.deployments.get(deployment)
        if settings is not None:
            exchange.meter = self.meter(settings.id)
        quota = self.quotas.get((entry.workspace, entry.name, credential))
        if quota is None or quota.entry is not entry:
            quota = self._quota(entry, credential)
        if quota.interval or quota.concurrency:
            refused = quota.acquire()
            if refused is not None:
                return _over_quota(credential, *refused)
            if quota.concurrency:
                exchange.quota = quota
        else:
            quota.requests += 1
        if exchange.expect and exchange.expects_body:
            exchange.expect = False
            exchange.client.write(CONTINUE)
        exchange.when_read(lambda: self._start(exchange, entry, path, deployment, shadow))
        return None

    def _start(self, exchange, entry, path, deployment, shadow) -> None:
        """The body is read (or known to be streamed): forward, without a task when a slot
        and a pooled connection are free at once (most requests), else in one."""
        if exchange.gone:
            return
        try:
            if (
                shadow is None
                and exchange.complete
                and self._at_once(exchange, entry, path, deployment)
            ):
                return
        except Exception:  # a bug of ours answers 500; the router goes on
            log.exception("unexpected error routing %s", exchange.path)
            self._answer(exchange, Refusal(500, "An unexpected error occurred in the router."))
            return
        asyncio.ensure_future(self._serve(exchange, entry, path, deployment, shadow))

    def _at_once(self, exchange, entry, path, deployment) -> bool:
        """Send a whole body on a pooled connection if a replica has room now; the answer
        completes in callbacks. False when the request has to wait or connect."""
        settings = entry.deployments.get(deployment)
        if settings is None or not settings.replicas:
            return False
        load = self._load(entry, deployment, settings)
        address = load.try_acquire(settings.replicas, settings.max_concurrent_requests_per_instance)
        if address is None:
            return False
        connection = self.upstream.pooled(address)
        if connection is None:
            load.release(address)
            return False
        request_id = exchange.request_id or next(self.request_ids)
        exchange.response_id = request_id
        exchange.deployment, exchange.queued = deployment, "0.0"
        served_by = b"azureml-model-deployment: %s\r\nms-azureml-queue-time-ms: 0.0\r\n" % (
            deployment.encode("latin-1")
        )
        sink = LiveSink(exchange, served_by, request_id, path.startswith("/score"))
        target = f"{path}?{exchange.query}" if exchange.query else path
        body = exchange.body()
        waiter = connection.begin(
            sink,
            b"%shost: %s\r\ncontent-length: %d\r\n\r\n%s"
            % (self._head(exchange, target, request_id), host_header(address), len(body), body),
            exchange.method == "HEAD",
        )
        connection.arm(settings.request_timeout)
        exchange.upstream = connection
        waiter.add_done_callback(
            lambda done: self._answered(done, exchange, entry, path, deployment, load, address)
        )
        return True

    def _answered(self, done, exchange, entry, path, deployment, load, address) -> None:
        connection = exchange.upstream
        exchange.upstream = None
        error = done.exception()
        self.upstream.done(address, connection, error is None)
        load.release(address)
        if error is None or exchange.gone:
            return
        if isinstance(error, UpstreamClosed):
            # A pooled connection the replica had closed, or a replica gone: as a request
            # that waited, with connecting and retries.
            asyncio.ensure_future(self._serve(exchange, entry, path, deployment, None))
            return
        settings = entry.deployments.get(deployment)
        served_by = b"azureml-model-deployment: %s\r\n" % deployment.encode("latin-1")
        if isinstance(error, UpstreamTimeout):
            timeout = settings.request_timeout if settings is not None else 0
            message = f"The model did not answer within {timeout:g} s (requestTimeout)."
            self._answer(exchange, Refusal(408, message, served_by))
        else:
            message = f"A replica of '{deployment}' dropped the connection mid-request."
            self._answer(exchange, Refusal(502, message, served_by))

    def _load(self, entry, deployment: str, settings) -> Load:
        key = (entry.name, entry.workspace, deployment)
        load = self.loads.get(key)
        if load is None:
            load = self.loads[key] = Load(self.counters, settings.id, entry.name, deployment)
        load.settings = settings
        return load

    def _quota(self, entry: EndpointRoute, credential: str) -> Quota:
        """The credential's quota, with the limits of ``entry`` (the table's current one)."""
        key = (entry.workspace, entry.name, credential)
        quota = self.quotas.get(key)
        if quota is None:
            quota = self.quotas[key] = Quota(self.counters, entry.workspace, entry.name, credential)
        quota.configure(entry.quotas.get(credential))
        quota.entry = entry
        return quota

    def meter(self, deployment_id: str) -> Meter:
        meter = self.meters.get(deployment_id)
        if meter is None:
            meter = self.meters[deployment_id] = Meter(deployment_id)
        return meter

    def refuse(self, exchange: Exchange, refusal: Refusal) -> None:
        exchange.respond(refusal.status, JSON_TYPE + refusal.head, refusal.body())

    def _too_large(self) -> Refusal:
        return Refusal(413, f"The request body is larger than {self.max_body} bytes.")

    def too_large(self, exchange: Exchange) -> None:
        """The body grew past the limit (chunked, or more than its Content-Length said)."""
        if exchange.sink is not None and exchange.sink.transport is not None:
            exchange.sink.transport.abort()
        if exchange.started:
            exchange.abort()
        else:
            self.refuse(exchange, self._too_large())
        exchange.gone = True
        exchange._wake()

    # -- serving ------------------------------------------------------------------------------
    async def _serve(
        self, exchange: Exchange, entry: EndpointRoute, path: str, deployment: str, shadow
    ) -> None:
        try:
            body = await exchange.whole_body()
            if exchange.gone:
                return
            request_id = exchange.request_id or next(self.request_ids)
            exchange.response_id = request_id
            if shadow is not None and body is not None:
                self._mirror(exchange, entry, path, deployment, shadow, body, request_id)
                return
            refusal = await self._forward(exchange, path, entry, deployment, body, request_id)
            if refusal is not None:
                self._answer(exchange, refusal)
        except Exception:  # a bug of ours answers 500; the router goes on
            log.exception("unexpected error routing %s", exchange.path)
            self._answer(exchange, Refusal(500, "An unexpected error occurred in the router."))

    def _answer(self, exchange: Exchange, refusal: Refusal) -> None:
        if exchange.started:
            exchange.abort()
        else:
            self.refuse(exchange, refusal)

    async def _forward(
        self,
        exchange: Exchange,
        path: str,
        entry: EndpointRoute,
        deployment: str,
        body: bytes | None,
        request_id: str,
        sink=None,
        copy: Collected | None = None,
    ) -> Refusal | None:
        """Send the request to a replica of ``deployment``, its answer to ``sink`` (the
        client when None, and to ``copy`` too); or say why it could not be served."""
        settings = entry.deployments.get(deployment)
        replicas = settings.replicas if settings is not None else ()
        live = sink is None
        served_by = b"azureml-model-deployment: %s\r\n" % deployment.encode("latin-1")
        if live:
            exchange.deployment = deployment
        admitted = False
        if not replicas:
            if not (live and scales_from_zero(settings)):
                return Refusal(503, f"Deployment '{deployment}' has no ready replica.", served_by)
            held = await self._hold(exchange, entry, deployment, settings)
            if not isinstance(held, tuple):
                if held is not None:
                    held.head += served_by
                return held
            entry, held_ms = held
            settings = entry.deployments[deployment]
            replicas, admitted = settings.replicas, True
            served_by += b"%s: %.1f\r\n" % (COLD_START_HEADER, held_ms)
        load = self._load(entry, deployment, settings)
        slot = await load.acquire(
            replicas,
            settings.max_concurrent_requests_per_instance,
            settings.max_queue_wait,
            admitted,
        )
        if isinstance(slot, Refusal):
            slot.head += served_by
            return slot
        address, queued_ms = slot
        queued = f"{queued_ms:.1f}"
        served_by += b"ms-azureml-queue-time-ms: %s\r\n" % queued.encode()
        target = f"{path}?{exchange.query}" if exchange.query else path
        if live:
            exchange.queued = queued
            sink = LiveSink(exchange, served_by, request_id, path.startswith("/score"))
            sink.copy = copy
        head = self._head(exchange, target, request_id)
        timeout = settings.request_timeout
        tried = [address]
        fresh = body is None  # a streamed body goes on a new connection: it is sent once
        try:
            while True:
                if live and exchange.gone:
                    return None
                connection = None if fresh else self.upstream.pooled(address)
                reused = connection is not None
                if connection is None:
                    try:
                        connection = await self.upstream.connect(address, timeout)
                    except UpstreamError:
                        # Nothing was sent (a streamed body waits for its connection).
                        self.warnings.warn(
                            address, "replica %s of %s unreachable", address, deployment
                        )
                        other = self._another(load, address, replicas, tried, entry.name)
                        if other is None:
                            return self._unreachable(deployment, served_by)
                        address = other
                        continue
                    if live and exchange.gone:
                        self.upstream.done(address, connection, True)
                        return None
                request = b"%shost: %s\r\n" % (head, host_header(address))
                is_head = exchange.method == "HEAD"
                if body is not None:
                    waiter = connection.begin(
                        sink,
                        b"%scontent-length: %d\r\n\r\n%s" % (request, len(body), body),
                        is_head,
                    )
                    connection.arm(timeout)
                else:
                    waiter = connection.begin(
                        sink, request + exchange.body_head() + b"\r\n", is_head
                    )
                    exchange.attach(connection, timeout)
                if live:
                    exchange.upstream = connection
                try:
                    await waiter
                except UpstreamClosed:
                    self.upstream.done(address, connection, False)
                    if live and exchange.gone:
                        return None
                    if body is None:
                        message = f"A replica of '{deployment}' closed the connection."
                        return Refusal(502, message, served_by)
                    if reused:
                        fresh = True  # a pooled connection the replica had closed
                        continue
                    # Nothing came back: the replica stopped or was killed. Another one
                    # that was not tried yet gets the request.
                    self.warnings.warn(
                        address, "replica %s of %s closed the connection", address, deployment
                    )
                    other = self._another(load, address, replicas, tried, entry.name)
                    if other is None:
                        return self._unreachable(deployment, served_by)
                    address, fresh = other, False
                    continue
                except UpstreamBroken:
                    self.upstream.done(address, connection, False)
                    message = f"A replica of '{deployment}' dropped the connection mid-request."
                    return Refusal(502, message, served_by)
                except UpstreamTimeout:
                    self.upstream.done(address, connection, False)
                    message = f"The model did not answer within {timeout:g} s (requestTimeout)."
                    return Refusal(408, message, served_by)
                finally:
                    if live:
                        exchange.upstream = None
                self.upstream.done(address, connection, body is not None or exchange.complete)
                return None
        finally:
            load.release(address)

    # -- scale to zero: holding requests while a replica starts ---------------------------
    async def _hold(self, exchange, entry: EndpointRoute, deployment: str, settings):
        """Hold a request to a deployment at zero replicas until the routing table shows a
        ready one: then ``(entry, ms held)``, the request admitted to the deployment's load
        (held requests are let go in arrival order, as many as it admits). Or a refusal:
        429 at once over the endpoint's hold limit, 503 with Retry-After when no replica
        was ready within the hold time; None when the client left meanwhile."""
        counters = self.counters
        held_by_endpoint = f"held:{entry.workspace}/{entry.name}".lower()
        held_by_deployment = f"held:{settings.id}"
        with counters.lock:
            endpoint_slot = counters.slot(held_by_endpoint)
            if counters.total(endpoint_slot) >= self.hold_max:
                endpoint_slot = None
            else:
                counters.add(endpoint_slot, 1)
                counters.add(counters.slot(held_by_deployment), 1)
        if endpoint_slot is None:
            metrics.HELD.labels(entry.name, deployment, "refused").inc()
            return _too_many(
                f"{self.hold_max} requests are already held while the endpoint's deployments start"
            )
        self._load(entry, deployment, settings).arrived += 1
        loop = asyncio.get_running_loop()
        hold = self.holds.get(settings.id)
        if hold is None:
            hold = self.holds[settings.id] = Hold(entry.workspace, entry.name, deployment)
        waiter = loop.create_future()
        hold.waiters.append((waiter, exchange))
        if hold.task is None:
            hold.task = asyncio.ensure_future(self._release_held(hold))
        started = loop.time()
        try:
            released = await asyncio.wait_for(waiter, self.hold_seconds)
        except TimeoutError:
            metrics.HELD.labels(entry.name, deployment, "timeout").inc()
            return Refusal(
                503,
                f"Deployment '{deployment}' had no ready replica within "
                f"{self.hold_seconds:g} s of holding the request; one is starting.",
                b"retry-after: %d\r\n" % HOLD_RETRY_AFTER,
            )
        finally:
            with counters.lock:
                counters.add(counters.slot(held_by_endpoint), -1)
                counters.add(counters.slot(held_by_deployment), -1)
        if released is None:
            metrics.HELD.labels(entry.name, deployment, "gone").inc()
            return None
        metrics.HELD.labels(entry.name, deployment, "released").inc()
        held_seconds = loop.time() - started
        metrics.COLD_START.labels(entry.name, deployment).observe(held_seconds)
        return released, held_seconds * 1000

    async def _release_held(self, hold: Hold) -> None:
        """While requests are held for a deployment: look at the routing table every
        HOLD_POLL; with a ready replica there, let them go in arrival order, each admitted
        to the deployment's load (the rest wait for room); without one, ask for one."""
        waiters = hold.waiters
        try:
            while waiters:
                entry = self.table.lookup_path(hold.workspace, hold.endpoint)
                settings = entry.deployments.get(hold.deployment) if entry else None
                while waiters and (waiters[0][0].done() or waiters[0][1].gone):
                    waiter, _ = waiters.popleft()
                    if not waiter.done():
                        waiter.set_result(None)
                if settings is None or not waiters:
                    pass
                elif settings.replicas:
                    if self.activator is not None:
                        self.activator.activated(settings)
                    load = self._load(entry, hold.deployment, settings)
                    per_replica = settings.max_concurrent_requests_per_instance
                    while waiters and load.admit(settings.replicas, per_replica):
                        waiter, _ = waiters.popleft()
                        if waiter.done():
                            load.unadmit()
                        else:
                            waiter.set_result(entry)
                elif self.activator is not None and settings.instance_count == 0:
                    self.activator.activate(entry.name, hold.deployment, settings)
                if waiters:
                    await asyncio.sleep(HOLD_POLL)
        finally:
            hold.task = None

    def held(self, deployment_id: str) -> int:
        """Requests held for the deployment in all of this router's processes."""
        counters = self.counters
        with counters.lock:
            return counters.total(counters.slot(f"held:{deployment_id}"))

    def _another(self, load, address: str, replicas, tried: list, endpoint: str) -> str | None:
        """A replica of the same deployment not tried yet for this request, or None."""
        others = [a for a in replicas if a not in tried]
        if not others:
            return None
        other = others[0]
        load.move(address, other)
        tried.append(other)
        retries = self._retries.get((endpoint, load.deployment))
        if retries is None:
            retries = self._retries[(endpoint, load.deployment)] = metrics.RETRIES.labels(
                endpoint, load.deployment
            )
        retries.inc()
        return other

    @staticmethod
    def _unreachable(deployment: str, served_by: bytes) -> Refusal:
        message = f"No replica of deployment '{deployment}' could be reached."
        return Refusal(502, message, served_by)

    @staticmethod
    def _head(exchange: Exchange, target: str, request_id: str) -> bytes:
        """The request line and the headers a replica gets (without host and framing)."""
        lines = [b"%s %s HTTP/1.1\r\n" % (exchange.method.encode(), target.encode("latin-1"))]
        for name, value in exchange.headers:
            if name not in DROPPED:
                lines.append(b"%s: %s\r\n" % (name, value))
        if not exchange.request_id:
            lines.append(b"x-request-id: %s\r\n" % request_id.encode())
        return b"".join(lines)

    # -- mirroring ----------------------------------------------------------------------------
    def _mirror_target(self, entry: EndpointRoute) -> str | None:
        for name, percent in entry.mirror_traffic.items():
            if percent > 0 and random.random() * 100 < percent and name in entry.deployments:
                return name
        return None

    def _mirror(self, exchange, entry, path, live, shadow, body, request_id) -> None:
        """Serve from ``live``; copy the request to ``shadow`` without delaying or changing
        the client's answer, then compare the two answers by the endpoint's rule
        (comparison.same_answer: status, and JSON within a tolerance) and record the
        agreement and both latencies. Only bodies kept whole (up to BUFFERED bytes) are
        mirrored."""
        key = (entry.name, shadow)
        # Counted in the shadow deployment's minute (``_mirror_target`` picks only
        # deployments of the entry).
        meter = self.meter(entry.deployments[shadow].id)
        if self.mirrors_in_flight.get(key, 0) >= MAX_MIRRORS_IN_FLIGHT:
            metrics.MIRROR_DROPPED.labels(entry.name, shadow).inc()
            meter.mirror_dropped()
            asyncio.ensure_future(self._timed(exchange, path, entry, live, body, request_id))
            return
        self.mirrors_in_flight[key] = self.mirrors_in_flight.get(key, 0) + 1
        answer = Collected(BUFFERED)
        shadow_task = asyncio.ensure_future(
            self._timed(exchange, path, entry, shadow, body, request_id, answer)
        )
        asyncio.ensure_future(
            self._compare(
                key, meter, shadow_task, answer, exchange, path, entry, live, body, request_id
            )
        )

    async def _timed(
        self, exchange, path, entry, deployment, body, request_id, sink=None, copy=None
    ):
        """Forward (the live answer when ``sink`` is None), and how long it took."""
        started = time.perf_counter()
        refusal = await self._forward(
            exchange, path, entry, deployment, body, request_id, sink, copy
        )
        if refusal is not None:
            if sink is None:
                self._answer(exchange, refusal)
            target = copy if sink is None else sink
            if target is not None:
                target.status, target.body = refusal.status, [refusal.body()]
        return time.perf_counter() - started

    async def _compare(
        self, key, meter, shadow_task, answer, exchange, path, entry, live, body, request_id
    ):
        endpoint, shadow = key
        try:
            kept = Collected(BUFFERED)
            live_seconds = await self._timed(
                exchange, path, entry, live, body, request_id, None, kept
            )
            shadow_seconds = await shadow_task
            metrics.MIRRORED.labels(endpoint, shadow).inc()
            metrics.MIRROR_LATENCY.labels(endpoint, shadow, "live").observe(live_seconds)
            metrics.MIRROR_LATENCY.labels(endpoint, shadow, "shadow").observe(shadow_seconds)
            agreed = not (kept.truncated or answer.truncated) and same_answer(
                kept.status,
                b"".join(kept.body),
                answer.status,
                b"".join(answer.body),
                entry.mirror_comparison,
            )
            if agreed:
                metrics.MIRROR_AGREED.labels(endpoint, shadow).inc()
            meter.mirrored(agreed)
        except Exception:  # a bug of ours answers 500; the router goes on
            log.exception("unexpected error routing %s", exchange.path)
            self._answer(exchange, Refusal(500, "An unexpected error occurred in the router."))
        finally:
            self.mirrors_in_flight[key] -= 1

    # -- auth ---------------------------------------------------------------------------------
    def _credential(self, entry: EndpointRoute, header: str) -> str | None:
        """Which of the endpoint's credentials ``header`` carries (PRIMARY_KEY,
        SECONDARY_KEY, AML_TOKEN), or None: not authorized. A retired key counts as the key
        it was until its overlap window ends, on this machine's clock."""
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            return None
        if entry.auth_mode == "Key":
            digest = self._digests.get(credential)
            if digest is None:
                if len(self._digests) >= TOKEN_CACHE:
                    self._digests.clear()
                digest = self._digests[credential] = hashlib.sha256(credential.encode()).hexdigest()
            for index, known in enumerate(entry.key_digests[:2]):
                if hmac.compare_digest(digest, known):
                    return KEY_CREDENTIALS[index]
            for retired in entry.retired_keys:
                if hmac.compare_digest(digest, retired.digest) and time.time() < retired.expires_at:
                    return retired.credential
            return None
        if entry.auth_mode == "AMLToken":
            return AML_TOKEN if self._token_valid(entry, credential) else None
        return None  # AADToken needs Entra ID, which a self-hosted router cannot check

    def _token_valid(self, entry: EndpointRoute, credential: str) -> bool:
        """Verify an AMLToken (signature, audience, issuer, expiry); a verified one is
        remembered until it expires or the signing keys change."""
        keys = self.table.signing_keys
        if keys is not self._tokens_keys:
            self._tokens, self._tokens_keys = {}, keys
        cached = (credential, entry.token_audience)
        expires = self._tokens.get(cached)
        if expires is not None:
            if time.time() < expires:
                return True
            del self._tokens[cached]
        try:
            kid = jwt.get_unverified_header(credential).get("kid")
            key = keys.get(kid)
            if key is None:
                return False
            claims = jwt.decode(
                credential,
                key,
                algorithms=["EdDSA"],
                audience=entry.token_audience,
                issuer=TOKEN_ISSUER,
            )
        except jwt.InvalidTokenError:
            return False
        if "exp" in claims:
            if len(self._tokens) >= TOKEN_CACHE:
                self._tokens.clear()
            self._tokens[cached] = float(claims["exp"])
        return True

    @staticmethod
    def _pick(traffic: dict) -> str | None:
        weighted = [(name, weight) for name, weight in traffic.items() if weight > 0]
        if not weighted:
            return None
        if len(weighted) == 1:
            return weighted[0][0]
        names, weights = zip(*weighted, strict=True)
        return random.choices(names, weights)[0]

    # -- after the answer ---------------------------------------------------------------------
    def record(self, exchange: Exchange) -> None:
        """Count the answer and log it (called once per request, when it was answered).
        Prometheus counts at once, not in batches: a process that is killed loses no
        counts; the deployment's meter is reported every second (``minutes``)."""
        elapsed = time.perf_counter() - exchange.began
        if exchange.quota is not None:
            exchange.quota.release()
            exchange.quota = None
        status = exchange.status if exchange.finished and not exchange.gone else 499
        counted = (exchange.endpoint, exchange.deployment, status)
        counter = self._counters.get(counted)
        if counter is None:  # labels() is a lookup worth skipping on the hot path
            counter = self._counters[counted] = metrics.REQUESTS.labels(
                counted[0], counted[1], str(status)
            )
        counter.inc()
        if exchange.deployment:
            histogram = self._latencies.get(counted[:2])
            if histogram is None:
                histogram = self._latencies[counted[:2]] = metrics.LATENCY.labels(*counted[:2])
            histogram.observe(elapsed)
        meter = exchange.meter
        if meter is not None:
            queued = exchange.queued
            meter.count(status, elapsed, float(queued) if queued else None)
        if self.access_log is not None:
            self.access_log.write(
                exchange,
                exchange.endpoint,
                exchange.deployment,
                status,
                elapsed,
                exchange.queued,
                exchange.response_id or exchange.request_id,
            )


def host_header(address: str) -> bytes:
    """The Host a replica is sent: its address, or ``localhost`` for a Unix socket."""
    return b"localhost" if address.startswith("unix:") else address.encode()


class Load:
    """One deployment's requests, counted across the router's processes (``slots``).

    Each replica takes ``maxConcurrentRequestsPerInstance`` at once; more wait up to
    ``maxQueueWait`` for a slot; past ``2 * max * replicas`` in the router at all, requests
    are refused with 429 at once, as Azure documents. A waiting request wakes when this
    process frees a slot, and looks again every QUEUE_POLL for slots other processes free."""

    def __init__(self, counters: SharedCounters, name: str, endpoint: str, deployment: str):
        self.counters = counters
        self.name = f"deployment:{name}"
        self.endpoint, self.deployment = endpoint, deployment
        # The deployment's routing entry as last seen (load reports and gauges use it).
        self.settings = DeploymentRoute(id=name)
        # This process's share: requests at replicas, and requests admitted (incl. waiting).
        self.in_flight = 0
        self.admitted = 0
        self.waiting = 0
        # Requests that came for the deployment (a count that only grows): the autoscaler
        # scales a minInstances 0 deployment to zero when it stops growing.
        self.arrived = 0
        self.freed = asyncio.Condition()
        self.turn = itertools.count()

    async def acquire(
        self, replicas: list[str], per_replica: int, queue_wait: float, admitted: bool = False
    ):
        """A replica for the request (its address, ms queued), or a 429 refusal.
        ``admitted``: counted already (``admit``; a request that was held)."""
        limit = 2 * per_replica * len(replicas)
        counters = self.counters
        with counters.lock:
            slot = counters.slot(self.name)
            if not admitted and counters.total(slot) >= limit:
                address = None
            else:
                if not admitted:
                    counters.add(slot, 1)
                    self.arrived += 1
                address = self._take(replicas, per_replica) or ""
        if address is None:
            return _too_many(f"more than {limit} requests are pending on this deployment")
        self.admitted += 1
        if address:
            self.in_flight += 1
            return address, 0.0
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            remaining = queue_wait - (loop.time() - started)
            if remaining <= 0:
                with counters.lock:
                    counters.add(counters.slot(self.name), -1)
                self.admitted -= 1
                return _too_many(f"no replica was free within maxQueueWait ({queue_wait:g} s)")
            self.waiting += 1
            try:
                async with self.freed:
                    await asyncio.wait_for(self.freed.wait(), min(remaining, QUEUE_POLL))
            except TimeoutError:
                pass
            finally:
                self.waiting -= 1
            with counters.lock:
                address = self._take(replicas, per_replica)
            if address:
                self.in_flight += 1
                return address, (loop.time() - started) * 1000

    def admit(self, replicas, per_replica: int) -> bool:
        """Count a held request as admitted if the deployment admits one more (its replica
        is taken by ``acquire(admitted=True)``)."""
        counters = self.counters
        with counters.lock:
            slot = counters.slot(self.name)
            if counters.total(slot) >= 2 * per_replica * len(replicas):
                return False
            counters.add(slot, 1)
        return True

    def unadmit(self) -> None:
        with self.counters.lock:
            self.counters.add(self.counters.slot(self.name), -1)

    def waiting_in_router(self) -> int:
        """Requests waiting for a replica of this deployment in all of this router's
        processes (admitted, not yet at a replica)."""
        counters = self.counters
        with counters.lock:
            admitted = counters.total(counters.slot(self.name))
            busy = sum(counters.total(slot) for _, slot in self._slots(self.settings.replicas))
        return max(admitted - busy, 0)

    def try_acquire(self, replicas, per_replica: int) -> str | None:
        """A replica with room now (counted as ``acquire`` does), or None: the request has
        to wait, or be refused, which ``acquire`` decides."""
        counters = self.counters
        with counters.lock:
            admitted = counters.slot(self.name)
            if counters.total(admitted) >= 2 * per_replica * len(replicas):
                return None
            address = self._take(replicas, per_replica)
            if address is None:
                return None
            counters.add(admitted, 1)
        self.admitted += 1
        self.in_flight += 1
        self.arrived += 1
        return address

    def _take(self, replicas: list[str], per_replica: int) -> str | None:
        """With the lock held: count a request on the least busy replica with room (ties
        round robin), or None when all are full."""
        counters = self.counters
        busy = [(counters.total(slot), slot, address) for address, slot in self._slots(replicas)]
        turn = next(self.turn) % len(busy)
        rotated = busy[turn:] + busy[:turn]
        count, slot, address = min(rotated, key=lambda item: item[0])
        if count >= per_replica:
            return None
        counters.add(slot, 1)
        return address

    def _slots(self, replicas: list[str]):
        return [(address, self.counters.slot(address)) for address in replicas]

    def move(self, old: str, new: str) -> None:
        with self.counters.lock:
            self.counters.add(self.counters.slot(old), -1)
            self.counters.add(self.counters.slot(new), 1)

    def release(self, address: str) -> None:
        counters = self.counters
        with counters.lock:
            counters.add(counters.slot(address), -1)
            counters.add(counters.slot(self.name), -1)
        self.in_flight -= 1
        self.admitted -= 1
        if self.waiting:
            asyncio.ensure_future(self._notify())

    async def _notify(self) -> None:
        async with self.freed:
            self.freed.notify()


class Hold:
    """The requests one serving process holds for a deployment at zero replicas, in arrival
    order (each a future and its exchange), and the task that lets them go."""

    __slots__ = ("workspace", "endpoint", "deployment", "waiters", "task")

    def __init__(self, workspace: str, endpoint: str, deployment: str):
        self.workspace, self.endpoint, self.deployment = workspace, endpoint, deployment
        self.waiters: deque = deque()
        self.task: asyncio.Future | None = None


def scales_from_zero(settings: DeploymentRoute | None) -> bool:
    """Whether requests to the deployment are held while it has no ready replica: it is
    autoscaled with minInstances 0, so a replica starts when they come."""
    scale = settings.autoscale if settings is not None else None
    return scale is not None and scale.min_instances == 0 and scale.max_instances > 0


def _over_quota(credential: str, limit: str, wait: float) -> Refusal:
    """429 for a credential over its quota; Retry-After in whole seconds, rounded up."""
    if limit == "rate":
        message = (
            f"Too many requests: the {credential} credential's rate limit is used up; a "
            f"request is admitted again in {wait:.3f} s."
        )
    else:
        message = (
            f"Too many requests: the {credential} credential has as many requests in flight "
            "as its maxConcurrentRequests."
        )
    return Refusal(429, message, b"retry-after: %d\r\n" % max(1, math.ceil(wait)))


def _too_many(reason: str) -> Refusal:
    return Refusal(429, f"Too many pending requests: {reason}.", RETRY_AFTER)
