"""The router's per-minute metrics: what a meter counts, and a real two-process router's
reports adding up in Redis to what its clients saw."""

from __future__ import annotations

import hashlib
import logging
import time

import pytest
import redis
import requests

from contracts.metrics import (
    LATENCY_BUCKETS,
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
BLUE, GREEN = "minutes-blue-id", "minutes-green-id"


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
