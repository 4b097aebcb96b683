"""Scoring requests: find the endpoint, authenticate, pick a deployment and a replica,
forward, and say who served. Error statuses are mapped here, with a JSON body each."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import logging
import random
import uuid

import jwt

from dataplane.http import Request, Response
from dataplane.router.table import RoutingTable
from dataplane.router.upstream import Upstream, UpstreamError

log = logging.getLogger("weir.router")

DEPLOYMENT_HEADER = "azureml-model-deployment"
# Not forwarded to replicas: the caller's credential, and hop-by-hop headers.
DROPPED = frozenset(
    {"authorization", "host", "connection", "keep-alive", "transfer-encoding", "content-length"}
)
TOKEN_ISSUER = "weir"
DEFAULT_TIMEOUT = 60.0


def _json(status: int, message: str, extra: list | None = None) -> Response:
    body = json.dumps({"message": message}).encode()
    return Response(status, body, [("content-type", "application/json"), *(extra or [])])


class RouterApp:
    def __init__(self, table: RoutingTable, upstream: Upstream | None = None):
        self.table = table
        self.upstream = upstream or Upstream()
        self._turns: dict[tuple, itertools.count] = {}

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

    def _replicas(self, entry: dict, deployment: str) -> list[str]:
        replicas = entry["deployments"].get(deployment, {}).get("replicas", [])
        if len(replicas) < 2:
            return list(replicas)
        turn = next(self._turns.setdefault((entry["name"], deployment), itertools.count()))
        start = turn % len(replicas)
        return replicas[start:] + replicas[:start]  # round robin, the rest as fallbacks

    async def _forward(self, request: Request, entry: dict, deployment: str) -> Response:
        replicas = self._replicas(entry, deployment)
        served_by = [(DEPLOYMENT_HEADER, deployment)]
        if not replicas:
            return _json(503, f"Deployment '{deployment}' has no ready replica.", served_by)
        headers = [(k, v) for k, v in request.headers.items() if k not in DROPPED]
        if "x-request-id" not in request.headers:
            headers.append(("x-request-id", str(uuid.uuid4())))
        path = request.path + (f"?{request.query}" if request.query else "")
        # A request that surely never reached a replica is tried once more on another one.
        for address in replicas[:2]:
            try:
                status, response_headers, body = await self.upstream.request(
                    address, request.method, path, headers, request.body, DEFAULT_TIMEOUT
                )
            except UpstreamError:
                log.warning("replica %s of %s unreachable", address, deployment)
                continue
            kept = [(k, v) for k, v in response_headers if k.lower() not in DROPPED]
            return Response(status, body, [*kept, *served_by])
        return _json(502, f"No replica of deployment '{deployment}' could be reached.", served_by)
