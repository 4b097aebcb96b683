"""Per-minute scoring metrics: what each router process adds up and reports to Redis, and
the control plane collects into Postgres.

Each serving process counts, per deployment (by the routing entry's deployment ``id``, the
control plane's OnlineDeployment primary key), the requests answered in the current minute
and adds them every REPORT_PERIOD to that minute's hash, ``metrics_key(minute, id)``, with
HINCRBY / HINCRBYFLOAT (counts and sums) and ``RAISE_TO`` (the gauges' highest value); the
deployment id goes into the minute's set, ``index_key(minute)``, so the collector finds
the hashes without a SCAN. Both expire after KEY_TTL. A minute is complete REPORT_GRACE
seconds after it ends; the collector moves complete minutes into Postgres (adding, so
reports that arrive later still count) and deletes what it moved.
"""

from __future__ import annotations

# Upper bounds (seconds, inclusive) of the latency histogram's buckets, as the router's
# Prometheus histogram has them; one bucket more counts what is slower than the last.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

MINUTE = 60
REPORT_PERIOD = 1.0
# A process's report can be this late (a busy event loop, a slow Redis) and still land in
# its minute before the collector takes the minute.
REPORT_GRACE = 5.0
# Minutes the collector has not taken by then (it was down) are lost.
KEY_TTL = 15 * MINUTE

METRICS = "weir:metrics:{}:{}"  # minute (Unix time), deployment id
INDEX = "weir:metrics:{}"  # minute: the set of deployment ids reported in it

# Hash fields. Requests by status class, and two statuses also on their own: 429 (refused:
# over a quota, queue full or no replica free within maxQueueWait) and 499 (the client went
# away before the answer), which are counted in 4xx as well.
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")
THROTTLED, CLIENT_CLOSED = "429", "499"
REQUESTS = "requests:{}"  # a status class or THROTTLED / CLIENT_CLOSED
LATENCY = "latency:{}"  # the bucket's index, 0..len(LATENCY_BUCKETS)
LATENCY_SUM = "latencySum"  # seconds
# Time requests waited for a free replica (those that got one), in milliseconds.
QUEUE_SUM = "queueMsSum"
QUEUE_COUNT = "queueCount"
# Mirrored traffic, counted on the shadow deployment (the one the copy went to): copies
# whose answer was compared with the live one, those that agreed (by the endpoint's rule, as
# the router's comparison.same_answer applies it), and copies not sent because too many were
# in flight.
MIRRORED = "mirrored"
MIRROR_AGREED = "mirrorAgreed"
MIRROR_DROPPED = "mirrorDropped"
# Gauges sampled by each process: the minute's highest value.
READY_REPLICAS = "readyReplicasMax"
QUEUED = "queuedMax"

# HSET each (field, value) pair of ARGV unless the hash holds a larger value already.
RAISE_TO = """
for i = 1, #ARGV, 2 do
    local current = redis.call('HGET', KEYS[1], ARGV[i])
    if not current or tonumber(current) < tonumber(ARGV[i + 1]) then
        redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
    end
end
return 0
"""


def minute_of(when: float) -> int:
    """The minute (Unix time of its first second) ``when`` is in."""
    return int(when // MINUTE) * MINUTE


def metrics_key(minute: int, deployment_id: str) -> str:
    return METRICS.format(minute, deployment_id)


def index_key(minute: int) -> str:
    return INDEX.format(minute)
