"""Scoring requests: find the endpoint, authenticate, pick a deployment and a replica,
forward, and say who served. Error statuses are mapped here, with a JSON body each."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import math
import random
import time
import uuid

import jwt

from contracts.routing import TOKEN_ISSUER, DeploymentRoute, EndpointRoute
from dataplane.http import REASONS, Request, Response
from dataplane.router import metrics
from dataplane.router.accesslog import AccessLog
from dataplane.router.slots import SharedCounters
from dataplane.router.table import RoutingTable
from dataplane.router.upstream import (
    Upstream,
    UpstreamBroken,
    UpstreamError,
    UpstreamTimeout,
)

log = logging.getLogger("weir.router")

DEPLOYMENT_HEADER = "azureml-model-deployment"
# Not forwarded to replicas: the caller's credential, and hop-by-hop headers.
DROPPED = frozenset(
    {"authorization", "host", "connection", "keep-alive", "transfer-encoding", "content-length"}
)
# Copies to a shadow deployment in flight at once, per endpoint: a slow shadow cannot make
# the router hold more than this many extra requests (the rest are not mirrored).
MAX_MIRRORS_IN_FLIGHT = 64
# Relative and absolute tolerance when comparing numbers in live and shadow answers.
MIRROR_TOLERANCE = 1e-6
# How long the request waited for a free replica, so overload is explainable client-side.
QUEUE_HEADER = "ms-azureml-queue-time-ms"
# How often a queued request looks for a slot freed by another router process.
QUEUE_POLL = 0.005
# Path-based scoring URIs: /endpoints/{workspace}/{endpoint}/score (no wildcard DNS needed).
PATH_PREFIX = "/endpoints/"
# Azure's limit on a scoring request body.
MAX_BODY = 100 * 1024 * 1024


def _json(status: int, message: str, extra: list | None = None) -> Response:
    body = json.dumps({"message": message}).encode()
    return Response(status, body, [("content-type", "application/json"), *(extra or [])])


class RouterApp:
    def __init__(
        self,
        table: RoutingTable,
        upstream: Upstream | None = None,
        access_log: AccessLog | None = None,
        counters: SharedCounters | None = None,
    ):
        self.table = table
        self.counters = counters or SharedCounters(1)
        self.access_log = access_log
        self.upstream = upstream or Upstream()
        self.loads: dict[tuple, Load] = {}
        self.mirrors_in_flight: dict[tuple, int] = {}
        self._counters: dict[tuple, object] = {}
        self._latencies: dict[tuple, object] = {}

    async def __call__(self, request: Request) -> Response:
        started = time.perf_counter()
        endpoint = ""
        try:
            endpoint, response = await self._route(request)
        except Exception:  # a bug of ours answers 500; the router goes on
            log.exception("unexpected error routing %s", request.path)
            response = _json(500, "An unexpected error occurred in the router.")
        elapsed = time.perf_counter() - started
        deployment = queued = request_id = ""
        for name, value in response.headers:
            if name == DEPLOYMENT_HEADER:
                deployment = value
            elif name == QUEUE_HEADER:
                queued = value
            elif name == "x-request-id":
                request_id = value
        counted = (endpoint, deployment, response.status)
        counter = self._counters.get(counted)
        if counter is None:  # labels() is a lookup worth skipping on the hot path
            counter = self._counters[counted] = metrics.REQUESTS.labels(*map(str, counted))
        counter.inc()
        if deployment:
            histogram = self._latencies.get(counted[:2])
            if histogram is None:
                histogram = self._latencies[counted[:2]] = metrics.LATENCY.labels(*counted[:2])
            histogram.observe(elapsed)
        if self.access_log is not None:
            self.access_log.write(
                request, endpoint, deployment, response.status, elapsed, queued, request_id
            )
        return response

    async def _route(self, request: Request) -> tuple[str, Response]:
        """Find the endpoint by host ({endpoint}.{workspace}.{domain}) or by path
        (/endpoints/{workspace}/{endpoint}/...), then serve. Returns (endpoint, response)."""
        path = request.path
        if path.startswith(PATH_PREFIX):
            parts = path.split("/", 4)
            if len(parts) < 4:
                return "", _json(404, f"No endpoint is served at {path}.")
            entry = self.table.lookup_path(parts[2], parts[3])
            path = "/" + (parts[4] if len(parts) > 4 else "")
            if entry is None:
                return "", _json(404, f"No endpoint '{parts[3]}' in workspace '{parts[2]}'.")
        else:
            host = request.headers.get("host", "").rsplit(":", 1)[0].lower()
            if path == "/healthz":
                return "", Response(200, b"ok")
            entry = self.table.lookup(host)
            if entry is None:
                return "", _json(404, f"No endpoint is served at {host}.")
        return entry.name, await self._serve(request, entry, path)

    async def _serve(self, request: Request, entry: EndpointRoute, path: str) -> Response:
        if not self._authorized(entry, request.headers.get("authorization", "")):
            return _json(401, "The request is not authorized.", [("www-authenticate", "Bearer")])
        requested = request.headers.get(DEPLOYMENT_HEADER)
        if requested:
            deployment = next(
                (d for d in entry.deployments if d.lower() == requested.lower()), None
            )
            if deployment is None:
                return _json(404, f"Deployment '{requested}' does not exist on this endpoint.")
        else:
            deployment = self._pick(entry.traffic)
            if deployment is None:
                return _json(404, "The endpoint has no deployment with traffic above 0.")
            # Only requests routed by the traffic rules are mirrored, as on Azure.
            shadow = self._mirror_target(entry)
            if shadow is not None:
                return await self._mirrored(request, path, entry, deployment, shadow)
        return await self._forward(request, path, entry, deployment)

    def _mirror_target(self, entry: EndpointRoute) -> str | None:
        for name, percent in entry.mirror_traffic.items():
            if percent > 0 and random.random() * 100 < percent and name in entry.deployments:
                return name
        return None

    async def _mirrored(
        self, request: Request, path: str, entry: EndpointRoute, live: str, shadow: str
    ) -> Response:
        """Serve from ``live``; copy the request to ``shadow`` without delaying or changing
        the client's answer, then compare the two answers (status, and JSON within a
        numeric tolerance) and record the agreement and both latencies."""
        key = (entry.name, shadow)
        if self.mirrors_in_flight.get(key, 0) >= MAX_MIRRORS_IN_FLIGHT:
            metrics.MIRROR_DROPPED.labels(entry.name, shadow).inc()
            return await self._forward(request, path, entry, live)
        self.mirrors_in_flight[key] = self.mirrors_in_flight.get(key, 0) + 1
        shadow_task = asyncio.ensure_future(
            self._timed(self._forward(request, path, entry, shadow))
        )
        response, live_seconds = await self._timed(self._forward(request, path, entry, live))
        asyncio.ensure_future(self._compare(key, shadow_task, response, live_seconds))
        return response

    @staticmethod
    async def _timed(awaitable):
        started = time.perf_counter()
        result = await awaitable
        return result, time.perf_counter() - started

    async def _compare(self, key, shadow_task, live: Response, live_seconds: float) -> None:
        endpoint, shadow = key
        try:
            answer, shadow_seconds = await shadow_task
            metrics.MIRRORED.labels(endpoint, shadow).inc()
            metrics.MIRROR_LATENCY.labels(endpoint, shadow, "live").observe(live_seconds)
            metrics.MIRROR_LATENCY.labels(endpoint, shadow, "shadow").observe(shadow_seconds)
            if same_answer(live.status, live.body, answer.status, answer.body):
                metrics.MIRROR_AGREED.labels(endpoint, shadow).inc()
        finally:
            self.mirrors_in_flight[key] -= 1

    def _authorized(self, entry: EndpointRoute, header: str) -> bool:
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            return False
        if entry.auth_mode == "Key":
            digest = hashlib.sha256(credential.encode()).hexdigest()
            return any(hmac.compare_digest(digest, known) for known in entry.key_digests)
        if entry.auth_mode == "AMLToken":
            try:
                kid = jwt.get_unverified_header(credential).get("kid")
                key = self.table.signing_keys.get(kid)
                if key is None:
                    return False
                jwt.decode(
                    credential,
                    key,
                    algorithms=["EdDSA"],
                    audience=entry.token_audience,
                    issuer=TOKEN_ISSUER,
                )
                return True
            except jwt.InvalidTokenError:
                return False
        return False  # AADToken needs Entra ID, which a self-hosted router cannot check

    @staticmethod
    def _pick(traffic: dict) -> str | None:
        weighted = [(name, weight) for name, weight in traffic.items() if weight > 0]
        if not weighted:
            return None
        names, weights = zip(*weighted, strict=True)
        return random.choices(names, weights)[0]

    async def _forward(
        self, request: Request, path: str, entry: EndpointRoute, deployment: str
    ) -> Response:
        settings = entry.deployments.get(deployment)
        replicas = settings.replicas if settings is not None else ()
        served_by = [(DEPLOYMENT_HEADER, deployment)]
        if not replicas:
            return _json(503, f"Deployment '{deployment}' has no ready replica.", served_by)
        key = (entry.name, entry.workspace, deployment)
        load = self.loads.get(key)
        if load is None:
            load = self.loads[key] = Load(self.counters, settings.id, entry.name, deployment)
        load.settings = settings
        slot = await load.acquire(
            replicas, settings.max_concurrent_requests_per_instance, settings.max_queue_wait
        )
        if isinstance(slot, Response):
            slot.headers.extend(served_by)
            return slot
        address, queued_ms = slot
        served_by.append((QUEUE_HEADER, f"{queued_ms:.1f}"))
        headers = [(k, v) for k, v in request.headers.items() if k not in DROPPED]
        request_id = request.headers.get("x-request-id")
        if request_id is None:
            request_id = str(uuid.uuid4())
            headers.append(("x-request-id", request_id))
        if request.query:
            path = f"{path}?{request.query}"
        timeout = settings.request_timeout
        tried = [address]
        try:
            while True:
                try:
                    status, response_headers, body = await self.upstream.request(
                        address, request.method, path, headers, request.body, timeout
                    )
                    break
                except UpstreamError:
                    # The request never reached this replica: once, try another one.
                    log.warning("replica %s of %s unreachable", address, deployment)
                    others = [a for a in replicas if a not in tried]
                    if len(tried) > 1 or not others:
                        message = f"No replica of deployment '{deployment}' could be reached."
                        return _json(502, message, served_by)
                    load.move(address, others[0])
                    address = others[0]
                    tried.append(address)
                except UpstreamBroken:
                    message = f"A replica of '{deployment}' dropped the connection mid-request."
                    return _json(502, message, served_by)
                except UpstreamTimeout:
                    message = f"The model did not answer within {timeout:g} s (requestTimeout)."
                    return _json(408, message, served_by)
        finally:
            load.release(address)
        kept = [(k, v) for k, v in response_headers if k.lower() not in DROPPED]
        if not any(k.lower() == "x-request-id" for k, _ in kept):
            kept.append(("x-request-id", request_id))
        if status >= 400 and path.startswith("/score"):
            # Azure's model error: the replica's own status and reason in headers.
            kept += [
                ("ms-azureml-model-error-statuscode", str(status)),
                ("ms-azureml-model-error-reason", REASONS.get(status, "Unknown")),
            ]
            return Response(424, body, [*kept, *served_by])
        return Response(status, body, [*kept, *served_by])


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
        self.freed = asyncio.Condition()
        self.turn = itertools.count()

    async def acquire(self, replicas: list[str], per_replica: int, queue_wait: float):
        limit = 2 * per_replica * len(replicas)
        counters = self.counters
        with counters.lock:
            admitted = counters.slot(self.name)
            if counters.total(admitted) >= limit:
                address = None
            else:
                counters.add(admitted, 1)
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


def _too_many(reason: str) -> Response:
    return _json(429, f"Too many pending requests: {reason}.", [("retry-after", "1")])


def same_answer(status_a: int, body_a: bytes, status_b: int, body_b: bytes) -> bool:
    """Equal statuses, and equal bodies (as JSON, numbers within MIRROR_TOLERANCE)."""
    if status_a != status_b:
        return False
    try:
        return _close(json.loads(body_a), json.loads(body_b))
    except ValueError:
        return body_a == body_b


def _close(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=MIRROR_TOLERANCE, abs_tol=MIRROR_TOLERANCE)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return a == b
