"""The router's per-minute metrics: what a meter counts, and a real two-process router's
reports adding up in Redis to what its clients saw."""

from __future__ import annotations

import hashlib
import logging
import time
import uuid

import pytest
import redis
import requests

from contracts.metrics import (
    LATENCY_BUCKETS,
    MIRROR_AGREED,
    MIRROR_DROPPED,
    MIRRORED,
    QUEUE_COUNT,
    QUEUED,
    READY_REPLICAS,
    index_key,
    metrics_key,
    minute_of,
)
from contracts.routing import ROUTES, DeploymentRoute, EndpointRoute
from dataplane.router.minutes import Meter, MinuteReporter, Report
from tests.dataplane.conftest import free_port, start_router
from tests.dataplane.test_router_processes import FEED, wait_for

HOST = "minutes.ws.localhost"
KEY = "minutes-key"
# New ids each run: counts an earlier run left in Redis this minute are not these.
BLUE, GREEN = f"minutes-blue-{uuid.uuid4()}", f"minutes-green-{uuid.uuid4()}"


def test_a_meter_counts_by_status_class_latency_bucket_and_queue_time():
    meter = Meter("d")
    meter.count(200, 0.003, 0.0)
    meter.count(201, 0.003, 4.5)
    meter.count(429, 0.0005, None)
    meter.count(499, 45.0, 10.0)
    meter.count(503, 0.001, None)
    meter.sample(2, 0)
    meter.sample(1, 3)
    (report,) = meter.take(time.time())
    assert report.counts == {
        "requests:2xx": 2,
        "requests:4xx": 2,
        "requests:5xx": 1,
        "requests:429": 1,
        "requests:499": 1,
        "latency:0": 2,  # 0.5 ms and 1 ms: the first bucket's bound is inclusive
        "latency:2": 2,
        f"latency:{len(LATENCY_BUCKETS)}": 1,  # slower than the last bound
        QUEUE_COUNT: 3,
    }
    assert report.sums == {"latencySum": pytest.approx(45.0075), "queueMsSum": 14.5}
    assert report.gauges == {READY_REPLICAS: 2, QUEUED: 3}
    # Taken: nothing more to say until something is counted or a gauge rises.
    meter.sample(2, 3)
    assert meter.take(time.time()) == []
    meter.sample(2, 4)
    assert meter.take(time.time())[0].gauges == {QUEUED: 4}


def test_a_meter_counts_the_copies_mirrored_to_its_shadow_deployment():
    meter = Meter("shadow")
    meter.mirrored(agreed=True)
    meter.mirrored(agreed=False)
    meter.mirrored(agreed=True)
    meter.mirror_dropped()
    (report,) = meter.take(time.time())
    assert report.counts == {MIRRORED: 3, MIRROR_AGREED: 2, MIRROR_DROPPED: 1}
    assert (report.sums, report.gauges) == ({}, {})


def test_a_minute_that_ended_is_reported_as_its_own():
    meter = Meter("d")
    meter.count(200, 0.01, 0.0)
    counted_in = minute_of(time.time())
    reports = meter.take(time.time() + 120)  # as if nothing happened for two minutes
    assert [(r.minute, r.counts["requests:2xx"]) for r in reports] == [(counted_in, 1)]
    assert meter.minute == minute_of(time.time() + 120)


def test_reports_to_an_unreachable_redis_are_dropped_and_logged_once(caplog):
    reporter = MinuteReporter(None, f"redis://127.0.0.1:{free_port()}/0")
    report = Report(minute_of(time.time()), "d", {"requests:2xx": 1}, {}, {})
    with caplog.at_level(logging.WARNING, logger="weir.router"):
        reporter.write([report])
        reporter.write([report])
    assert len([r for r in caplog.records if "not reported" in r.message]) == 1


def reported(feed: redis.Redis, deployment_id: str, since: float) -> dict[str, float]:
    """The deployment's fields summed over the minutes since ``since``."""
    totals: dict[str, float] = {}
    minute = minute_of(since)
    while minute <= time.time():
        for field, value in feed.hgetall(metrics_key(minute, deployment_id)).items():
            name = field.decode()
            if name in (READY_REPLICAS, QUEUED):
                totals[name] = max(totals.get(name, 0), float(value))
            else:
                totals[name] = totals.get(name, 0) + float(value)
        minute += 60
    return totals


@pytest.fixture
def router(replica, tmp_path):
    script = tmp_path / "score.py"
    script.write_text("def init():\n    pass\n\ndef run(raw):\n    return {'ok': True}\n")
    served = replica(script, tmp_path)
    feed = redis.Redis.from_url(FEED)
    entry = EndpointRoute(
        name="minutes",
        workspace="ws",
        auth_mode="Key",
        key_digests=(hashlib.sha256(KEY.encode()).hexdigest(),),
        traffic={"blue": 100},
        deployments={
            "blue": DeploymentRoute(
                id=BLUE,
                replicas=(f"127.0.0.1:{served.port}",),
                max_concurrent_requests_per_instance=2,
            ),
            "green": DeploymentRoute(id=GREEN),  # no ready replica: 503
        },
    )
    feed.hset(ROUTES, HOST, entry.to_json())
    process, url = start_router(FEED)
    yield url, feed
    process.terminate()
    process.wait(timeout=30)
    feed.hdel(ROUTES, HOST)


def test_a_two_process_router_reports_each_deployments_minute_to_redis(router):
    url, feed = router
    started = time.time()
    # A new connection each: the kernel spreads them over both serving processes.
    headers = {"Host": HOST, "Authorization": f"Bearer {KEY}", "Connection": "close"}
    answers = [requests.post(f"{url}/score", "{}", headers=headers, timeout=10) for _ in range(30)]
    assert [a.status_code for a in answers] == [200] * 30
    green = {**headers, "azureml-model-deployment": "green"}
    assert requests.post(f"{url}/score", "{}", headers=green, timeout=10).status_code == 503
    # Refused before a deployment is chosen: not in any deployment's minute.
    assert requests.post(f"{url}/score", "{}", headers={"Host": HOST}).status_code == 401

    wait_for(lambda: reported(feed, BLUE, started).get("requests:2xx") == 30, timeout=10)
    blue = reported(feed, BLUE, started)
    assert sum(v for k, v in blue.items() if k.startswith("latency:")) == 30
    assert 0 < blue["latencySum"] < 30
    assert blue[QUEUE_COUNT] == 30
    assert "requests:4xx" not in blue and "requests:5xx" not in blue
    wait_for(lambda: reported(feed, BLUE, started).get(READY_REPLICAS) == 1)
    wait_for(lambda: reported(feed, GREEN, started).get("requests:5xx") == 1)
    assert QUEUE_COUNT not in reported(feed, GREEN, started)  # it never got a replica
    # The collector finds the minutes' hashes through their index.
    assert BLUE.encode() in feed.smembers(index_key(minute_of(time.time())))


SHADOW_HOST = "mirrored.ws.localhost"


@pytest.fixture
def mirroring_router(replica, tmp_path):
    """Blue serves all the traffic and every request is mirrored to green, which agrees
    with blue on "same" and answers anything else differently. The deployments' ids are new
    each run, so that minutes counted by earlier runs do not add to this one's."""
    live = tmp_path / "live.py"
    live.write_text("def init():\n    pass\n\ndef run(raw):\n    return {'ok': True}\n")
    shadow = tmp_path / "shadow.py"
    shadow.write_text("def init():\n    pass\n\ndef run(raw):\n    return {'ok': raw == 'same'}\n")
    blue, green = replica(live, tmp_path), replica(shadow, tmp_path)
    feed = redis.Redis.from_url(FEED)
    live_id, shadow_id = f"mirrored-blue-{uuid.uuid4()}", f"mirrored-green-{uuid.uuid4()}"
    entry = EndpointRoute(
        name="mirrored",
        workspace="ws",
        auth_mode="Key",
        key_digests=(hashlib.sha256(KEY.encode()).hexdigest(),),
        traffic={"blue": 100},
        mirror_traffic={"green": 100},
        deployments={
            "blue": DeploymentRoute(id=live_id, replicas=(f"127.0.0.1:{blue.port}",)),
            "green": DeploymentRoute(id=shadow_id, replicas=(f"127.0.0.1:{green.port}",)),
        },
    )
    feed.hset(ROUTES, SHADOW_HOST, entry.to_json())
    process, url = start_router(FEED)
    yield url, feed, live_id, shadow_id
    process.terminate()
    process.wait(timeout=30)
    feed.hdel(ROUTES, SHADOW_HOST)


def test_mirrored_copies_and_their_agreement_reach_the_shadow_deployments_minute(
    mirroring_router,
):
    url, feed, live, shadow_id = mirroring_router
    started = time.time()
    headers = {"Host": SHADOW_HOST, "Authorization": f"Bearer {KEY}", "Connection": "close"}
    bodies = ["same"] * 12 + ["different"] * 8
    answers = [requests.post(f"{url}/score", b, headers=headers, timeout=10) for b in bodies]
    # The clients' answers are blue's, whatever green said.
    assert {(a.status_code, a.json()["ok"]) for a in answers} == {(200, True)}
    # Chosen by name, a request is not mirrored (as on Azure).
    chosen = {**headers, "azureml-model-deployment": "blue"}
    assert requests.post(f"{url}/score", "same", headers=chosen, timeout=10).status_code == 200

    wait_for(lambda: reported(feed, shadow_id, started).get(MIRRORED) == 20, timeout=10)
    shadow = reported(feed, shadow_id, started)
    assert shadow[MIRROR_AGREED] == 12
    assert MIRROR_DROPPED not in shadow
    # The copies are not requests of green's own; blue counts the clients' requests only.
    assert "requests:2xx" not in shadow
    wait_for(lambda: reported(feed, live, started).get("requests:2xx") == 21)
    assert MIRRORED not in reported(feed, live, started)
