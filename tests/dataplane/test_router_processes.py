"""The router's serving processes: shared request counters, and the supervisor that keeps
one process per core serving on the port."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
import requests

from contracts.routing import ROUTES, DeploymentRoute, EndpointRoute
from dataplane.router.slots import SharedCounters, SlotsFull
from tests.dataplane.conftest import ROOT, free_port

# A Redis db of the data-plane tests' own: a running stack rebuilds its routing table whole.
FEED = os.environ.get("WEIR_DATAPLANE_TEST_REDIS", "redis://127.0.0.1:6379/13")
HOST = "procs.ws.localhost"
KEY = "processes-key"


def test_counters_are_summed_over_processes_and_a_dead_ones_are_forgotten():
    counters = SharedCounters(processes=2, slots=4)
    with counters.lock:
        replica = counters.slot("127.0.0.1:1")
        counters.add(replica, 2)
        counters.bind(1)
        assert counters.slot("127.0.0.1:1") == replica  # found by name, not by cache
        counters.add(replica, 1)
        assert counters.total(replica) == 3
    counters.forget(1)
    with counters.lock:
        assert counters.total(replica) == 2


def test_slots_nobody_counts_on_are_reused_when_the_table_is_full():
    counters = SharedCounters(processes=1, slots=2)
    with counters.lock:
        busy = counters.slot("busy")
        counters.add(busy, 1)
        idle = counters.slot("idle")
        reused = counters.slot("new")  # the table is full: "idle" counts nothing
        assert reused == idle and counters.slot("busy") == busy
        counters.add(reused, 1)
        with pytest.raises(SlotsFull):
            counters.slot("one too many")


def children(pid: int) -> set[int]:
    return {int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def wait_for(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.fixture
def router(replica, tmp_path):
    script = tmp_path / "score.py"
    script.write_text("def init():\n    pass\n\ndef run(raw):\n    return {'ok': True}\n")
    served = replica(script, tmp_path)
    feed = redis.Redis.from_url(FEED)
    entry = EndpointRoute(
        name="procs",
        workspace="ws",
        auth_mode="Key",
        key_digests=(hashlib.sha256(KEY.encode()).hexdigest(),),
        traffic={"blue": 100},
        deployments={
            "blue": DeploymentRoute(
                id="blue-id",
                replicas=(f"127.0.0.1:{served.port}",),
                max_concurrent_requests_per_instance=4,
            )
        },
    )
    feed.hset(ROUTES, HOST, entry.to_json())
    port, metrics_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dataplane.router",
            "--processes",
            "2",
            "--port",
            str(port),
            "--metrics-port",
            str(metrics_port),
            "--redis-url",
            FEED,
            "--access-log",
            "off",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout.readline().startswith("READY")
    yield process, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{metrics_port}/metrics"
    if process.poll() is None:
        process.kill()
        process.wait()
    feed.delete("weir:routes")


def test_a_killed_serving_process_is_replaced_and_scoring_goes_on(router):
    process, url, metrics_url = router
    headers = {"Host": HOST, "Authorization": f"Bearer {KEY}"}

    def score() -> int:
        try:
            return requests.post(f"{url}/score", "{}", headers=headers, timeout=5).status_code
        except requests.ConnectionError:
            return 0  # connections the killed process held (or had queued) are reset

    assert [score() for _ in range(20)] == [200] * 20
    before = wait_for(lambda: len(children(process.pid)) == 2 and children(process.pid))
    victim = min(before)
    subprocess.run(["kill", "-KILL", str(victim)], check=True)
    # The other process serves meanwhile; only what the dead one held is lost.
    wait_for(lambda: [score() for _ in range(20)] == [200] * 20, timeout=2)
    after = wait_for(lambda: len(children(process.pid)) == 2 and children(process.pid))
    assert victim not in after
    wait_for(lambda: [score() for _ in range(10)] == [200] * 10)

    text = requests.get(metrics_url, timeout=5).text
    served = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('weir_router_requests_total{deployment="blue",endpoint="procs"')
    ]
    assert served and served[0] >= 40  # counted by all processes, merged

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
    assert all(not Path(f"/proc/{pid}").exists() for pid in after)


def test_a_router_stopped_while_starting_exits_at_once():
    process = subprocess.Popen(
        [sys.executable, "-m", "dataplane.router", "--processes", "2", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # No Redis there: the serving processes wait 5 s for a first table before serving.
        env={**os.environ, "WEIR_ROUTING_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"},
    )
    time.sleep(1.5)  # forked, none serving yet
    process.send_signal(signal.SIGTERM)
    # The supervisor passes SIGTERM on, reaps its processes and returns: a clean exit.
    assert process.wait(timeout=5) == 0


def test_a_process_that_dies_holding_the_lock_does_not_stop_the_others():
    counters = SharedCounters(processes=2, slots=4)
    pid = os.fork()
    if pid == 0:  # a serving process, killed between taking the lock and releasing it
        counters.bind(1)
        counters.lock.acquire()
        os._exit(0)
    os.waitpid(pid, 0)
    counters.forget(1)
    assert counters.lock.acquire(True, 1.0)  # usable again
    counters.lock.release()
