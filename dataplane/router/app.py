"""Scoring requests: find the endpoint, authenticate, pick a deployment and a replica,
forward, and say who served. Error statuses are mapped here, with a JSON body each."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import logging
import random
import uuid

import jwt

from dataplane.http import REASONS, Request, Response
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
TOKEN_ISSUER = "weir"
DEFAULT_TIMEOUT = 5.0
# How long the request waited for a free replica, so overload is explainable client-side.
QUEUE_HEADER = "ms-azureml-queue-time-ms"
# Azure's limit on a scoring request body.
MAX_BODY = 100 * 1024 * 1024


def _json(status: int, message: str, extra: list | None = None) -> Response:
    body = json.dumps({"message": message}).encode()
    return Response(status, body, [("content-type", "application/json"), *(extra or [])])


class RouterApp:
    def __init__(self, table: RoutingTable, upstream: Upstream | None = None):
        self.table = table
        self.upstream = upstream or Upstream()
        self.loads: dict[tuple, Load] = {}

    async def __call__(self, request: Request) -> Response:
        try:
            return await self._route(request)
        except Exception:  # a bug of ours answers 500; the router goes on
            log.exception("unexpected error routing %s", request.path)
            return _json(500, "An unexpected error occurred in the router.")

    async def _route(self, request: Request) -> Response:
        host = request.headers.get("host", "").rsplit(":", 1)[0].lower()
        if request.path == "/healthz":
            return Response(200, b"ok")
        entry = self.table.lookup(host)
        if entry is None:
            return _json(404, f"No endpoint is served at {host}.")
        if not self._authorized(entry, request.headers.get("authorization", "")):
            return _json(401, "The request is not authorized.", [("www-authenticate", "Bearer")])
        requested = request.headers.get(DEPLOYMENT_HEADER)
        if requested:
            deployment = next(
                (d for d in entry["deployments"] if d.lower() == requested.lower()), None
            )
            if deployment is None:
                return _json(404, f"Deployment '{requested}' does not exist on this endpoint.")
        else:
            deployment = self._pick(entry["traffic"])
            if deployment is None:
                return _json(404, "The endpoint has no deployment with traffic above 0.")
        return await self._forward(request, entry, deployment)

    def _authorized(self, entry: dict, header: str) -> bool:
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            return False
        if entry["authMode"] == "Key":
            digest = hashlib.sha256(credential.encode()).hexdigest()
            return any(hmac.compare_digest(digest, known) for known in entry["keyDigests"])
        if entry["authMode"] == "AMLToken":
            try:
                kid = jwt.get_unverified_header(credential).get("kid")
                key = self.table.signing_keys.get(kid)
                if key is None:
                    return False
                jwt.decode(
                    credential,
                    key,
                    algorithms=["EdDSA"],
                    audience=entry["tokenAudience"],
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

    async def _forward(self, request: Request, entry: dict, deployment: str) -> Response:
        settings = entry["deployments"].get(deployment, {})
        replicas = settings.get("replicas", [])
        served_by = [(DEPLOYMENT_HEADER, deployment)]
        if not replicas:
            return _json(503, f"Deployment '{deployment}' has no ready replica.", served_by)
        load = self.loads.setdefault((entry["name"], entry["workspace"], deployment), Load())
        per_replica = settings.get("maxConcurrentRequestsPerInstance", 1)
        slot = await load.acquire(replicas, per_replica, settings.get("maxQueueWait", 0.5))
        if isinstance(slot, Response):
            slot.headers.extend(served_by)
            return slot
        address, queued_ms = slot
        served_by.append((QUEUE_HEADER, f"{queued_ms:.1f}"))
        headers = [(k, v) for k, v in request.headers.items() if k not in DROPPED]
        if "x-request-id" not in request.headers:
            headers.append(("x-request-id", str(uuid.uuid4())))
        path = request.path + (f"?{request.query}" if request.query else "")
        timeout = settings.get("requestTimeout", DEFAULT_TIMEOUT)
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
        if status >= 400:
            # Azure's model error: the replica's own status and reason in headers.
            kept += [
                ("ms-azureml-model-error-statuscode", str(status)),
                ("ms-azureml-model-error-reason", REASONS.get(status, "Unknown")),
            ]
            return Response(424, body, [*kept, *served_by])
        return Response(status, body, [*kept, *served_by])


class Load:
    """Requests in flight on one deployment's replicas, and the ones waiting for a slot.

    Each replica takes ``maxConcurrentRequestsPerInstance`` at once; more wait up to
    ``maxQueueWait`` for a slot; past ``2 * max * replicas`` in the router at all, requests
    are refused with 429 at once, as Azure documents."""

    def __init__(self):
        self.in_flight: dict[str, int] = {}
        self.admitted = 0
        self.freed = asyncio.Condition()
        self.turn = itertools.count()

    async def acquire(self, replicas: list[str], per_replica: int, queue_wait: float):
        limit = 2 * per_replica * len(replicas)
        if self.admitted >= limit:
            return _too_many(f"more than {limit} requests are pending on this deployment")
        self.admitted += 1
        loop = asyncio.get_running_loop()
        started = loop.time()
        while True:
            free = [a for a in replicas if self.in_flight.get(a, 0) < per_replica]
            if free:
                # The least busy replica; ties go round robin.
                turn = next(self.turn) % len(free)
                rotated = free[turn:] + free[:turn]
                address = min(rotated, key=lambda a: self.in_flight.get(a, 0))
                self.in_flight[address] = self.in_flight.get(address, 0) + 1
                return address, (loop.time() - started) * 1000
            remaining = queue_wait - (loop.time() - started)
            if remaining <= 0:
                self.admitted -= 1
                return _too_many(f"no replica was free within maxQueueWait ({queue_wait:g} s)")
            async with self.freed:
                try:
                    await asyncio.wait_for(self.freed.wait(), remaining)
                except TimeoutError:
                    pass

    def move(self, old: str, new: str) -> None:
        self.in_flight[old] -= 1
        self.in_flight[new] = self.in_flight.get(new, 0) + 1

    def release(self, address: str) -> None:
        self.in_flight[address] -= 1
        self.admitted -= 1
        asyncio.ensure_future(self._notify())

    async def _notify(self) -> None:
        async with self.freed:
            self.freed.notify()


def _too_many(reason: str) -> Response:
    return _json(429, f"Too many pending requests: {reason}.", [("retry-after", "1")])
