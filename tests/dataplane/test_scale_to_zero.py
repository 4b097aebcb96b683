"""Scale to zero in a real router: requests to an autoscaled deployment with minInstances 0
and no ready replica are held, one activation is asked for on the broker, and the held
requests are answered in order once the routing table shows a replica; past the hold time
they get 503 with Retry-After, and past the endpoint's hold limit 429 at once."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
import redis
import requests

from contracts.routing import ROUTES, AutoscaleRoute, DeploymentRoute, EndpointRoute, changed
from tests.dataplane.conftest import ROOT, free_port

FEED = os.environ.get("WEIR_DATAPLANE_TEST_REDIS", "redis://127.0.0.1:6379/13")
KEY = "zero-key"
# Records each request's body as it arrives at the replica, then answers it.
RECORDING = """import os

def init():
    pass

def run(raw):
    with open(os.environ["ARRIVALS"], "a") as fh:
        fh.write(raw + "\\n")
    return {"got": raw}
"""


class ZeroRouter:
    """A router on its own routing-table host and broker queue, and the helpers to drive
    the deployment ``cold`` of endpoint ``zero`` through it."""

    def __init__(self, processes: int, *flags: str):
        self.feed = redis.Redis.from_url(FEED)
        self.name = f"zero{uuid.uuid4().hex[:6]}"
        self.host = f"{self.name}.ws.localhost"
        self.queue = f"zero-test-{uuid.uuid4().hex[:8]}"
        self.deployment_id = f"{self.name}-cold"
        self.publish(replicas=(), instance_count=0)
        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dataplane.router", "--processes", str(processes)]
            + ["--port", str(port), "--redis-url", FEED, "--broker-url", FEED]
            + ["--queue", self.queue, "--access-log", "off", *flags],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout.readline().startswith("READY")
        self.url = f"http://127.0.0.1:{port}"

    def publish(self, replicas: tuple, instance_count: int, per_replica: int = 8) -> None:
        entry = EndpointRoute(
            name=self.name,
            workspace="ws",
            auth_mode="Key",
            key_digests=(hashlib.sha256(KEY.encode()).hexdigest(),),
            traffic={"cold": 100},
            deployments={
                "cold": DeploymentRoute(
                    id=self.deployment_id,
                    replicas=replicas,
                    instance_count=instance_count,
                    max_concurrent_requests_per_instance=per_replica,
                    max_queue_wait=5.0,
                    autoscale=AutoscaleRoute(
                        min_instances=0,
                        max_instances=2,
                        target_utilization_percentage=70,
                        polling_interval=1.0,
                        scale_to_zero_after=300.0,
                    ),
                )
            },
        )
        self.feed.hset(ROUTES, self.host, entry.to_json())
        self.feed.publish(changed(self.feed), self.host)

    def score(self, body: str = "{}", timeout: float = 30) -> requests.Response:
        headers = {"Host": self.host, "Authorization": f"Bearer {KEY}"}
        return requests.post(f"{self.url}/score", body, headers=headers, timeout=timeout)

    def activations(self) -> list[dict]:
        """The decisions sent to the workers on this router's queue (Celery messages)."""
        sent = []
        for raw in self.feed.lrange(self.queue, 0, -1):
            message = json.loads(raw)
            assert message["headers"]["task"] == "weir.autoscale"
            _, kwargs, _ = json.loads(base64.b64decode(message["body"]))
            sent.append(kwargs)
        return sent

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.feed.hdel(ROUTES, self.host)
        self.feed.delete(self.queue, f"weir:activate:{self.deployment_id}")


@pytest.fixture
def zero_router():
    started = []

    def start(processes: int = 2, *flags: str) -> ZeroRouter:
        router = ZeroRouter(processes, *flags)
        started.append(router)
        return router

    yield start
    for router in started:
        router.stop()


def in_threads(calls) -> list:
    """Run each call in a thread of its own, starting them in order; their results."""
    results = [None] * len(calls)

    def run(index, call):
        results[index] = call()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
        time.sleep(0.05)  # the order they arrive in at the router
    return threads, results


def test_held_requests_are_answered_in_order_once_a_replica_is_ready(
    zero_router, replica, tmp_path, monkeypatch
):
    arrivals = tmp_path / "arrivals"
    monkeypatch.setenv("ARRIVALS", str(arrivals))
    script = tmp_path / "score.py"
    script.write_text(RECORDING)
    served = replica(script, tmp_path)
    router = zero_router(1)
    started = time.monotonic()
    threads, answers = in_threads([lambda i=i: router.score(f"request {i}") for i in range(5)])
    time.sleep(1.0)
    assert all(answer is None for answer in answers), "answered with no replica"
    router.publish(replicas=(f"127.0.0.1:{served.port}",), instance_count=1)
    for thread in threads:
        thread.join(timeout=30)
    elapsed = time.monotonic() - started
    assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
    assert arrivals.read_text().splitlines() == [f"request {i}" for i in range(5)]
    held = [float(a.headers["x-weir-cold-start-ms"]) for a in answers]
    assert held == sorted(held, reverse=True), held  # the first held the longest
    assert 1000 <= held[0] <= elapsed * 1000 and held[-1] >= 700, held
    # Warm now: no hold, no header.
    warm = router.score("warm")
    assert warm.status_code == 200 and "x-weir-cold-start-ms" not in warm.headers
    # One activation was asked for.
    (sent,) = router.activations()
    assert sent["deployment_id"] == router.deployment_id
    decision = sent["decision"]
    assert decision["action"] == "ScaleUp" and decision["fromInstances"] == 0
    assert decision["toInstances"] == 1  # 5 or fewer waiting, 8 per replica
    assert decision["reason"].startswith("activated: ")


def test_n_waiting_requests_ask_for_one_activation_of_what_they_need(zero_router):
    router = zero_router(2, "--hold-seconds", "2")
    router.publish(replicas=(), instance_count=0, per_replica=2)
    time.sleep(0.2)
    # Eight at once over two serving processes; two per replica: four wanted, two at most.
    threads, answers = in_threads([lambda: router.score() for _ in range(8)])
    for thread in threads:
        thread.join(timeout=30)
    assert [a.status_code for a in answers] == [503] * 8
    (sent,) = router.activations()
    decision = sent["decision"]
    waiting = int(decision["reason"].split()[1])
    assert 1 <= waiting <= 8 and decision["queuedRequests"] == waiting
    assert decision["toInstances"] == min(-(-waiting // 2), 2), decision


def test_a_hold_that_times_out_is_503_with_retry_after(zero_router):
    router = zero_router(2, "--hold-seconds", "1")
    started = time.monotonic()
    answer = router.score()
    elapsed = time.monotonic() - started
    assert answer.status_code == 503, answer.text
    assert answer.headers["Retry-After"] == "1"
    assert answer.headers["azureml-model-deployment"] == "cold"
    assert "no ready replica within 1 s" in answer.json()["message"]
    assert 1.0 <= elapsed < 2.0, elapsed


def test_past_the_endpoints_hold_limit_requests_are_refused_at_once(zero_router):
    router = zero_router(2, "--hold-seconds", "2", "--hold-max", "3")
    threads, answers = in_threads([lambda: router.score() for _ in range(3)])
    time.sleep(0.2)
    started = time.monotonic()
    refused = router.score()
    assert time.monotonic() - started < 0.5
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert "3 requests are already held" in refused.json()["message"]
    for thread in threads:
        thread.join(timeout=30)
    assert [a.status_code for a in answers] == [503] * 3
