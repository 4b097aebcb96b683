"""The routing table the scoring router serves from.

Each endpoint is one JSON entry (``EndpointRoute``) in the ``ROUTES`` hash, keyed by its
scoring host (``{endpoint}.{workspace}.{domain}``); a message on ``changed(client)`` names the
entry that changed (``ALL``: reload everything). ``SIGNING_KEYS`` maps key ids to the public
halves of the keys that sign AMLToken scoring tokens. The control plane writes, the router
reads; Postgres stays the source of truth and the table is rebuilt from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from contracts.comparison import MirrorComparison

ROUTES = "weir:routes"
SIGNING_KEYS = "weir:routes:signing-keys"
CHANGED = "weir:routes:changed"
ALL = "*"
# Per endpoint ({workspace}/{endpoint}, lower-cased): one field per router serving process,
# the JSON of its scoring usage by credential (``QuotaUsage``), rewritten every
# USAGE_PERIOD while it has any; reports older than USAGE_STALE are from gone processes.
USAGE = "weir:usage:{}/{}"
USAGE_PERIOD = 1.0
USAGE_STALE = 5.0

# The credentials an endpoint's quotas and usage are kept by: its two keys (in the order of
# ``key_digests``), and AMLTokens as a class (tokens are not stored).
PRIMARY_KEY, SECONDARY_KEY, AML_TOKEN = "primaryKey", "secondaryKey", "amlToken"
CREDENTIALS = (PRIMARY_KEY, SECONDARY_KEY, AML_TOKEN)


def usage_key(workspace: str, endpoint: str) -> str:
    return USAGE.format(workspace.lower(), endpoint.lower())


def changed(client) -> str:
    """The channel announcing changes to the table in ``client``'s Redis db. Redis's pub/sub
    ignores dbs, so the channel names it: installations sharing one Redis server on
    different dbs do not hear (and reload on) each other's announcements."""
    return f"{CHANGED}:{client.connection_pool.connection_kwargs.get('db', 0)}"


# Who signs scoring tokens (their ``iss`` claim).
TOKEN_ISSUER = "weir"

# A deployment with ``minInstances: 0`` goes to zero replicas after this many seconds
# without a request, unless its scaleSettings say otherwise (``scaleToZeroAfter``).
SCALE_TO_ZERO_AFTER = 300.0


@dataclass(frozen=True, slots=True)
class AutoscaleRoute:
    """What the router's autoscaler needs of a TargetUtilization deployment."""

    min_instances: int
    max_instances: int
    target_utilization_percentage: int
    polling_interval: float  # seconds
    # With min_instances 0: seconds without a request before the last replica goes.
    scale_to_zero_after: float = SCALE_TO_ZERO_AFTER

    def to_wire(self) -> dict:
        return {
            "minInstances": self.min_instances,
            "maxInstances": self.max_instances,
            "targetUtilizationPercentage": self.target_utilization_percentage,
            "pollingInterval": self.polling_interval,
            "scaleToZeroAfter": self.scale_to_zero_after,
        }

    @classmethod
    def from_wire(cls, data: dict | None) -> AutoscaleRoute | None:
        if not data:
            return None
        return cls(
            min_instances=data["minInstances"],
            max_instances=data["maxInstances"],
            target_utilization_percentage=data["targetUtilizationPercentage"],
            polling_interval=data["pollingInterval"],
            scale_to_zero_after=data.get("scaleToZeroAfter", SCALE_TO_ZERO_AFTER),
        )


@dataclass(frozen=True, slots=True)
class DeploymentRoute:
    """One deployment as the router sees it: where its ready replicas are and how it takes
    requests."""

    id: str
    replicas: tuple[str, ...] = ()  # host:port of ready replicas
    instance_count: int = 1
    max_concurrent_requests_per_instance: int = 1
    request_timeout: float = 5.0  # seconds
    max_queue_wait: float = 0.5  # seconds
    autoscale: AutoscaleRoute | None = None

    def to_wire(self) -> dict:
        return {
            "id": self.id,
            "replicas": list(self.replicas),
            "instanceCount": self.instance_count,
            "maxConcurrentRequestsPerInstance": self.max_concurrent_requests_per_instance,
            "requestTimeout": self.request_timeout,
            "maxQueueWait": self.max_queue_wait,
            "autoscale": self.autoscale.to_wire() if self.autoscale else None,
        }

    @classmethod
    def from_wire(cls, data: dict) -> DeploymentRoute:
        return cls(
            id=data["id"],
            replicas=tuple(data.get("replicas") or ()),
            instance_count=data.get("instanceCount", 1),
            max_concurrent_requests_per_instance=data.get("maxConcurrentRequestsPerInstance", 1),
            request_timeout=data.get("requestTimeout", 5.0),
            max_queue_wait=data.get("maxQueueWait", 0.5),
            autoscale=AutoscaleRoute.from_wire(data.get("autoscale")),
        )


@dataclass(frozen=True, slots=True)
class QuotaRoute:
    """One credential's scoring quota: a token bucket (``requests_per_second`` refill, at
    most ``burst`` at once) and requests in flight at once. None: no such limit."""

    requests_per_second: float | None = None
    burst: int | None = None
    max_concurrent_requests: int | None = None

    def to_wire(self) -> dict:
        return {
            "requestsPerSecond": self.requests_per_second,
            "burst": self.burst,
            "maxConcurrentRequests": self.max_concurrent_requests,
        }

    @classmethod
    def from_wire(cls, data: dict) -> QuotaRoute:
        return cls(
            requests_per_second=data.get("requestsPerSecond"),
            burst=data.get("burst"),
            max_concurrent_requests=data.get("maxConcurrentRequests"),
        )


@dataclass(frozen=True, slots=True)
class RetiredKey:
    """A replaced key still accepted, as the credential it was, until ``expires_at`` (Unix
    time): a rotation's overlap window. The router checks the time on every request."""

    digest: str
    credential: str  # PRIMARY_KEY | SECONDARY_KEY
    expires_at: float

    def to_wire(self) -> dict:
        return {"digest": self.digest, "credential": self.credential, "expiresAt": self.expires_at}

    @classmethod
    def from_wire(cls, data: dict) -> RetiredKey:
        return cls(data["digest"], data["credential"], float(data["expiresAt"]))


@dataclass(frozen=True, slots=True)
class EndpointRoute:
    """One endpoint: who may call it (key digests — never keys — or the token audience),
    how traffic and mirrored traffic split, how mirrored answers are compared, and its
    deployments by name."""

    name: str
    workspace: str
    auth_mode: str  # Key | AMLToken | AADToken
    key_digests: tuple[str, ...] = ()
    token_audience: str = ""
    traffic: dict[str, int] = field(default_factory=dict)
    mirror_traffic: dict[str, int] = field(default_factory=dict)
    deployments: dict[str, DeploymentRoute] = field(default_factory=dict)
    # By credential (CREDENTIALS); a credential not named has no quota. Entries written
    # before quotas existed have neither field.
    quotas: dict[str, QuotaRoute] = field(default_factory=dict)
    retired_keys: tuple[RetiredKey, ...] = ()
    # How a shadow's answer is compared with the live one (contracts.comparison); None, and
    # entries written before endpoints could set it: the default rule.
    mirror_comparison: MirrorComparison | None = None

    def to_wire(self) -> dict:
        return {
            "name": self.name,
            "workspace": self.workspace,
            "authMode": self.auth_mode,
            "keyDigests": list(self.key_digests),
            "tokenAudience": self.token_audience,
            "traffic": self.traffic,
            "mirrorTraffic": self.mirror_traffic,
            "deployments": {name: d.to_wire() for name, d in self.deployments.items()},
            "quotas": {name: q.to_wire() for name, q in self.quotas.items()},
            "retiredKeys": [k.to_wire() for k in self.retired_keys],
            "mirrorComparison": (
                self.mirror_comparison.to_wire() if self.mirror_comparison else None
            ),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_wire())

    @classmethod
    def from_json(cls, raw: str | bytes) -> EndpointRoute:
        data = json.loads(raw)
        return cls(
            name=data["name"],
            workspace=data["workspace"],
            auth_mode=data["authMode"],
            key_digests=tuple(data.get("keyDigests") or ()),
            token_audience=data.get("tokenAudience") or "",
            traffic=data.get("traffic") or {},
            mirror_traffic=data.get("mirrorTraffic") or {},
            deployments={
                name: DeploymentRoute.from_wire(d)
                for name, d in (data.get("deployments") or {}).items()
            },
            quotas={
                name: QuotaRoute.from_wire(q) for name, q in (data.get("quotas") or {}).items()
            },
            retired_keys=tuple(RetiredKey.from_wire(k) for k in data.get("retiredKeys") or ()),
            mirror_comparison=MirrorComparison.from_wire(data.get("mirrorComparison")),
        )
