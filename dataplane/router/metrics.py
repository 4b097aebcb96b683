"""The router's Prometheus metrics (served on their own port, not on scoring URIs).

With several serving processes each counts in PROMETHEUS_MULTIPROC_DIR and the supervisor
serves the merge: gauges say how (summed over live processes, or their maximum)."""

from prometheus_client import Counter, Gauge, Histogram

from contracts.metrics import LATENCY_BUCKETS

REQUESTS = Counter(
    "weir_router_requests_total",
    "Scoring requests answered, by endpoint, deployment and status",
    ["endpoint", "deployment", "status"],
)
LATENCY = Histogram(
    "weir_router_request_seconds",
    "Time from request to response, by endpoint and deployment",
    ["endpoint", "deployment"],
    buckets=LATENCY_BUCKETS,
)
IN_FLIGHT = Gauge(
    "weir_router_in_flight",
    "Requests being served by replicas",
    ["endpoint", "deployment"],
    multiprocess_mode="livesum",
)
QUEUED = Gauge(
    "weir_router_queued",
    "Requests waiting for a free replica",
    ["endpoint", "deployment"],
    multiprocess_mode="livesum",
)
REPLICAS = Gauge(
    "weir_router_replicas",
    "Ready replicas known",
    ["endpoint", "deployment"],
    multiprocess_mode="livemax",
)
MIRRORED = Counter(
    "weir_router_mirror_requests_total",
    "Requests copied to a shadow deployment (and compared)",
    ["endpoint", "deployment"],
)
MIRROR_AGREED = Counter(
    "weir_router_mirror_agreements_total",
    "Mirrored requests whose shadow answered like the live deployment",
    ["endpoint", "deployment"],
)
MIRROR_DROPPED = Counter(
    "weir_router_mirror_dropped_total",
    "Requests not mirrored because too many mirrors were in flight",
    ["endpoint", "deployment"],
)
MIRROR_LATENCY = Histogram(
    "weir_router_mirror_seconds",
    "Latency of the live and the shadow answer to mirrored requests",
    ["endpoint", "deployment", "role"],
    buckets=LATENCY_BUCKETS,
)
UTILIZATION = Gauge(
    "weir_router_utilization_percent",
    "Autoscaled deployments: (busy replicas + queued requests) / ready replicas, in percent",
    ["endpoint", "deployment"],
    multiprocess_mode="livemax",
)
SCALE_DECISIONS = Counter(
    "weir_router_scale_decisions_total",
    "Autoscaler decisions (ScaleUp, ScaleDown, AtMaxInstances), by endpoint and deployment",
    ["endpoint", "deployment", "action"],
)
RETRIES = Counter(
    "weir_router_retries_total",
    "Requests sent again to another replica after one could not be reached or closed the "
    "connection before answering",
    ["endpoint", "deployment"],
)
QUOTA_THROTTLED = Counter(
    "weir_router_quota_throttled_total",
    "Requests refused with 429 by a credential's quota, by endpoint, credential and limit "
    "(rate or concurrency)",
    ["endpoint", "credential", "limit"],
)
COLD_START = Histogram(
    "weir_router_cold_start_seconds",
    "Time requests to a deployment at zero replicas were held until a replica was ready",
    ["endpoint", "deployment"],
    buckets=(0.1, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 2, 3, 5, 10, 30, 60),
)
HELD = Counter(
    "weir_router_held_total",
    "Requests held while a deployment had no ready replica, by outcome (released, timeout: "
    "503 after the hold time, refused: 429 over the endpoint's hold limit, gone: the client "
    "left)",
    ["endpoint", "deployment", "outcome"],
)
ACTIVATIONS = Counter(
    "weir_router_activations_total",
    "Activations sent for a deployment at zero replicas with requests waiting",
    ["endpoint", "deployment"],
)
