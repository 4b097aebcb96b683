"""The routing table the scoring router serves from, built from Postgres and published to
Redis in the shape ``contracts.routing`` defines.

One writer per fact: an endpoint's ``applied_traffic`` is set by the operation that applies
it, a deployment's ``route`` (settings as applied, addresses as observed) by the workers
that roll it out and watch its replicas. Publishing only copies those rows, so any process
may publish without calling a backend, and ``provisioningState: Succeeded`` means the
router has the change. ``publish_all`` rebuilds the whole table (every reconcile tick).
"""

from __future__ import annotations

import hashlib
import logging
import time
from functools import cache

import redis
from django.conf import settings
from django.db import transaction

from contracts.comparison import MirrorComparison
from contracts.routing import (
    ALL,
    ROUTES,
    SIGNING_KEYS,
    AutoscaleRoute,
    DeploymentRoute,
    EndpointRoute,
    QuotaRoute,
    RetiredKey,
    changed,
)
from controlplane.core.durations import parse_seconds
from controlplane.core.models import OnlineDeployment, OnlineEndpoint, SigningKey
from controlplane.core.models.endpoint import scoring_host

log = logging.getLogger(__name__)


@cache
def client() -> redis.Redis:
    return redis.Redis.from_url(settings.WEIR_ROUTING_REDIS_URL, socket_timeout=2)


def host_of(endpoint) -> str:
    return endpoint.scoring_host or scoring_host(endpoint.name, endpoint.workspace.name)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


#
# What workers record
#
def deployment_route(deployment: OnlineDeployment, replicas: list[str]) -> DeploymentRoute:
    """The deployment's current settings, served by ``replicas`` (host:port)."""
    request_settings = deployment.request_settings or {}
    return DeploymentRoute(
        id=str(deployment.id),
        replicas=tuple(replicas),
        instance_count=deployment.instance_count,
        max_concurrent_requests_per_instance=request_settings.get(
            "maxConcurrentRequestsPerInstance", 1
        ),
        request_timeout=parse_seconds(request_settings.get("requestTimeout") or "PT5S"),
        max_queue_wait=parse_seconds(request_settings.get("maxQueueWait") or "PT0.5S"),
        autoscale=autoscale_route(deployment),
    )


def autoscale_route(deployment: OnlineDeployment) -> AutoscaleRoute | None:
    """What the router's autoscaler needs of a TargetUtilization deployment, else None."""
    scale = deployment.scale_settings or {}
    if scale.get("scaleType") != "TargetUtilization":
        return None
    return AutoscaleRoute(
        min_instances=scale["minInstances"],
        max_instances=scale["maxInstances"],
        target_utilization_percentage=scale["targetUtilizationPercentage"],
        polling_interval=parse_seconds(scale["pollingInterval"]),
        scale_to_zero_after=parse_seconds(scale.get("scaleToZeroAfter") or "PT5M"),
    )


def record_route(deployment: OnlineDeployment, replicas: list[str]) -> bool:
    """Store what the router should serve for ``deployment`` (its settings now, the ready
    ``replicas`` a worker observed). Returns whether it changed."""
    route = deployment_route(deployment, replicas).to_wire()
    if deployment.route == route:
        return False
    OnlineDeployment.objects.filter(pk=deployment.pk).update(route=route)
    deployment.route = route
    return True


def follow_rollout(deployment: OnlineDeployment, status) -> bool:
    """While an operation changes a deployment that serves already, keep its route to the
    replicas ready now: one that is leaving (scale-in, rolling update) is taken out as soon as
    its backend stops reporting it ready, before it is asked to stop, and a new one serves as
    soon as it is ready. Returns whether the route changed (the caller publishes)."""
    if not deployment.route or status is None:
        return False
    ready = status.serving_addresses()
    if sorted(ready) == sorted(deployment.route.get("replicas") or ()):
        return False
    return record_route(deployment, ready)


#
# Publishing
#
def entry(endpoint: OnlineEndpoint) -> EndpointRoute:
    """The endpoint's routing entry, from Postgres alone. A deployment never rolled out yet
    is listed with no replicas (requests naming it get 503, not 404)."""
    deployments = {}
    for deployment in endpoint.deployments.all():
        route = deployment.route
        deployments[deployment.name] = (
            DeploymentRoute.from_wire(route) if route else deployment_route(deployment, [])
        )
    return EndpointRoute(
        name=endpoint.name,
        workspace=endpoint.workspace.name,
        auth_mode=endpoint.auth_mode,
        key_digests=(key_digest(endpoint.primary_key), key_digest(endpoint.secondary_key)),
        token_audience=endpoint.token_audience,
        traffic=endpoint.applied_traffic,
        mirror_traffic=endpoint.applied_mirror_traffic,
        mirror_comparison=MirrorComparison.from_wire(endpoint.applied_mirror_comparison),
        deployments=deployments,
        quotas={name: QuotaRoute.from_wire(q) for name, q in endpoint.key_quotas.items()},
        retired_keys=tuple(
            RetiredKey.from_wire(k) for k in endpoint.retired_keys if k["expiresAt"] > time.time()
        ),
    )


def publish(endpoint_id) -> None:
    """Write one endpoint's entry and announce it; a failure is left to the reconciler."""
    endpoint = OnlineEndpoint.objects.select_related("workspace").filter(pk=endpoint_id).first()
    if endpoint is None or endpoint.provisioning_state == "Deleting":
        return
    host = host_of(endpoint)
    try:
        pipe = client().pipeline()
        pipe.hset(ROUTES, host, entry(endpoint).to_json())
        _signing_keys(pipe)
        pipe.publish(changed(client()), host)
        pipe.execute()
    except redis.RedisError:
        log.warning("could not publish routes for endpoint %s; the reconciler will", endpoint_id)


def publish_on_commit(endpoint_id) -> None:
    transaction.on_commit(lambda: publish(endpoint_id))


def unpublish(host: str) -> None:
    try:
        pipe = client().pipeline()
        pipe.hdel(ROUTES, host)
        pipe.publish(changed(client()), host)
        pipe.execute()
    except redis.RedisError:
        log.warning("could not remove routes for %s; the reconciler will", host)


def publish_all() -> int:
    """Rebuild the whole table from Postgres (level-triggered repair). Returns entries."""
    entries = {
        host_of(endpoint): entry(endpoint).to_json()
        for endpoint in OnlineEndpoint.objects.select_related("workspace")
        .prefetch_related("deployments")
        .exclude(provisioning_state="Deleting")
    }
    pipe = client().pipeline()
    stale = {k.decode() for k in client().hkeys(ROUTES)} - set(entries)
    if stale:
        pipe.hdel(ROUTES, *stale)
    if entries:
        pipe.hset(ROUTES, mapping=entries)
    _signing_keys(pipe)
    if stale or entries:
        pipe.publish(changed(client()), ALL)
    pipe.execute()
    return len(entries)


def _signing_keys(pipe) -> None:
    for key in SigningKey.objects.all():
        pipe.hset(SIGNING_KEYS, key.kid, key.public_key_pem)


def publish_signing_keys() -> None:
    try:
        pipe = client().pipeline()
        _signing_keys(pipe)
        pipe.publish(changed(client()), ALL)
        pipe.execute()
    except redis.RedisError:
        log.warning("could not publish signing keys; the reconciler will")
