"""The routing table the scoring router serves from, published to Redis.

Each endpoint is one JSON entry in the ``weir:routes`` hash, keyed by its scoring host
(``{endpoint}.{workspace}.{domain}``); a message on ``weir:routes:changed`` names the entry
that changed. The router keeps the whole table in memory and needs nothing else: key
digests (never keys), the public halves of the token signing keys, traffic, and the
addresses of ready replicas. Postgres stays the source of truth: ``publish_all`` rebuilds
the table from it (the reconciler runs it every tick).
"""

from __future__ import annotations

import hashlib
import json
import logging
from functools import cache

import redis
from django.conf import settings
from django.db import transaction

from controlplane.core.durations import parse_seconds
from controlplane.core.models import OnlineEndpoint, SigningKey
from controlplane.core.models.endpoint import scoring_host
from dataplane.router.table import CHANGED, ROUTES, SIGNING_KEYS

log = logging.getLogger(__name__)


@cache
def client() -> redis.Redis:
    return redis.Redis.from_url(settings.WEIR_ROUTING_REDIS_URL, socket_timeout=2)


def host_of(endpoint) -> str:
    return endpoint.scoring_host or scoring_host(endpoint.name, endpoint.workspace.name)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ReplicasUnknown(Exception):
    """A deployment's replicas could not be read (its cluster did not answer): the router
    keeps the entry it has rather than one without replicas."""


def entry(endpoint) -> dict:
    from controlplane.core.services.keys import token_audience
    from workers.backends import status_of

    deployments = {}
    for deployment in endpoint.deployments.all():
        try:
            status = status_of(deployment)
        except Exception as exc:
            raise ReplicasUnknown(f"{deployment.arm_id}: {exc}") from exc
        replicas = []
        if status is not None:
            replicas = [
                r["address"]
                for r in status.replicas
                if r["state"] == "ready" and r["revision"] == status.revision
            ]
        request_settings = deployment.request_settings or {}
        deployments[deployment.name] = {
            "id": str(deployment.id),
            "replicas": replicas,
            "instanceCount": deployment.instance_count,
            "autoscale": autoscale_settings(deployment),
            "maxConcurrentRequestsPerInstance": request_settings.get(
                "maxConcurrentRequestsPerInstance", 1
            ),
            "requestTimeout": parse_seconds(request_settings.get("requestTimeout") or "PT5S"),
            "maxQueueWait": parse_seconds(request_settings.get("maxQueueWait") or "PT0.5S"),
        }
    return {
        "name": endpoint.name,
        "workspace": endpoint.workspace.name,
        "authMode": endpoint.auth_mode,
        "keyDigests": [key_digest(endpoint.primary_key), key_digest(endpoint.secondary_key)],
        "tokenAudience": token_audience(endpoint),
        "traffic": endpoint.traffic,
        "mirrorTraffic": endpoint.mirror_traffic,
        "deployments": deployments,
    }


def autoscale_settings(deployment) -> dict | None:
    """What the router's autoscaler needs of a TargetUtilization deployment, else None."""
    scale = deployment.scale_settings or {}
    if scale.get("scaleType") != "TargetUtilization":
        return None
    return {
        "minInstances": scale["minInstances"],
        "maxInstances": scale["maxInstances"],
        "targetUtilizationPercentage": scale["targetUtilizationPercentage"],
        "pollingInterval": parse_seconds(scale["pollingInterval"]),
    }


def publish(endpoint_id) -> None:
    """Write one endpoint's entry (or remove it when the endpoint is gone) and announce it."""
    endpoint = OnlineEndpoint.objects.select_related("workspace").filter(pk=endpoint_id).first()
    try:
        if endpoint is None or endpoint.provisioning_state == "Deleting":
            return
        host = host_of(endpoint)
        pipe = client().pipeline()
        pipe.hset(ROUTES, host, json.dumps(entry(endpoint)))
        _signing_keys(pipe)
        pipe.publish(CHANGED, host)
        pipe.execute()
    except redis.RedisError:
        log.warning("could not publish routes for endpoint %s; the reconciler will", endpoint_id)
    except ReplicasUnknown as exc:
        log.warning("routes for endpoint %s left as they were: %s", endpoint_id, exc)


def unpublish(host: str) -> None:
    try:
        pipe = client().pipeline()
        pipe.hdel(ROUTES, host)
        pipe.publish(CHANGED, host)
        pipe.execute()
    except redis.RedisError:
        log.warning("could not remove routes for %s; the reconciler will", host)


def publish_on_commit(endpoint_id) -> None:
    transaction.on_commit(lambda: publish(endpoint_id))


def publish_all() -> int:
    """Rebuild the whole table from Postgres (level-triggered repair). Returns entries."""
    entries, unknown = {}, set()
    for endpoint in OnlineEndpoint.objects.select_related("workspace").exclude(
        provisioning_state="Deleting"
    ):
        try:
            entries[host_of(endpoint)] = json.dumps(entry(endpoint))
        except ReplicasUnknown as exc:
            unknown.add(host_of(endpoint))
            log.warning("routes for %s left as they were: %s", endpoint.name, exc)
    pipe = client().pipeline()
    stale = set(k.decode() for k in client().hkeys(ROUTES)) - set(entries) - unknown
    if stale:
        pipe.hdel(ROUTES, *stale)
    if entries:
        pipe.hset(ROUTES, mapping=entries)
    _signing_keys(pipe)
    if stale or entries:
        pipe.publish(CHANGED, "*")
    pipe.execute()
    return len(entries)


def _signing_keys(pipe) -> None:
    for key in SigningKey.objects.all():
        pipe.hset(SIGNING_KEYS, key.kid, key.public_key_pem)


def publish_signing_keys() -> None:
    try:
        pipe = client().pipeline()
        _signing_keys(pipe)
        pipe.publish(CHANGED, "*")
        pipe.execute()
    except redis.RedisError:
        log.warning("could not publish signing keys; the reconciler will")
