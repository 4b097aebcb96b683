"""Scoring under load while the endpoint changes: scale out and in, a blue→green rollout, and
a replica killed outright. A client sees no failed request through any of it."""

import collections
import http.client
import json
import os
import signal
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from contracts.routing import ROUTES
from tests.system.conftest import WHO
from tests.system.test_router import eventually, set_traffic

pytestmark = pytest.mark.system

# Bounded load: this many connections, each sending back to back, for as long as the
# scenario runs (it stops the load itself).
CONNECTIONS = 4


class Load:
    """Clients scoring over keep-alive connections until stopped; every answer is counted
    by status and by the deployment that served it, every exception as a failure."""

    def __init__(self, router_url: str, host: str, key: str):
        self.address = urlsplit(router_url).netloc
        self.headers = {
            "Host": host,
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
        }
        self.statuses: collections.Counter = collections.Counter()
        self.served: collections.Counter = collections.Counter()
        self.failures: list[str] = []
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run) for _ in range(CONNECTIONS)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _run(self) -> None:
        connection = http.client.HTTPConnection(self.address, timeout=30)
        while not self.stopping.is_set():
            try:
                connection.request("POST", "/score", body=b"{}", headers=self.headers)
                response = connection.getresponse()
                body = response.read()
                with self.lock:
                    self.statuses[response.status] += 1
                    self.served[response.getheader("azureml-model-deployment")] += 1
                    if response.status != 200:
                        self.failures.append(f"{response.status} {body[:200]!r}")
            except (OSError, http.client.HTTPException) as exc:
                with self.lock:
                    self.statuses["error"] += 1
                    self.failures.append(repr(exc))
                connection.close()
                connection = http.client.HTTPConnection(self.address, timeout=30)

    def total(self) -> int:
        with self.lock:
            return sum(self.statuses.values())

    def summary(self) -> str:
        return (
            f"{self.total()} requests: statuses {dict(self.statuses)}, "
            f"served by {dict(self.served)}, {len(self.failures)} failed"
        )


def deploy(stack, path: str, runtime: dict, name: str, capacity: int) -> None:
    body = {
        "location": "local",
        "sku": {"name": "Default", "capacity": capacity},
        "properties": {
            "endpointComputeType": "Managed",
            **runtime,
            "environmentVariables": {"WHO": name},
            # Room for every load connection on one replica: a 429 is overload, by design.
            "requestSettings": {"maxConcurrentRequestsPerInstance": CONNECTIONS},
        },
    }
    response = stack.call("PUT", f"{path}/deployments/{name}", body)
    assert response.status_code in (200, 201), response.text
    status = stack.wait_for_status(response.headers["Azure-AsyncOperation"], 180)
    assert status["status"] == "Succeeded", status


def scale(stack, path: str, name: str, capacity: int) -> None:
    response = stack.call("PATCH", f"{path}/deployments/{name}", {"sku": {"capacity": capacity}})
    assert response.status_code == 202, response.text
    status = stack.wait_for_status(response.headers["Azure-AsyncOperation"], 120)
    assert status["status"] == "Succeeded", status


@pytest.fixture
def live_endpoint(stack, workspace):
    """An endpoint whose deployment blue (two replicas) takes all traffic; yields its path,
    the runtime to deploy more with, its scoring host and a key."""
    runtime = stack.register_runtime(workspace)
    code_uri = stack.upload(workspace, {"score.py": WHO}, "codes")
    stack.call("PUT", f"{workspace}/codes/who/versions/1", {"properties": {"codeUri": code_uri}})
    runtime["codeConfiguration"]["codeId"] = "azureml:who:1"
    path = f"{workspace}/onlineEndpoints/steady"
    created = stack.call("PUT", path, {"location": "local", "properties": {"authMode": "Key"}})
    stack.wait_for_status(created.headers["Azure-AsyncOperation"])
    deploy(stack, path, runtime, "blue", 2)
    set_traffic(stack, path, {"blue": 100})
    host = urlsplit(stack.call("GET", path).json()["properties"]["scoringUri"]).netloc
    key = stack.call("POST", f"{path}/listKeys").json()["primaryKey"]
    return path, runtime, host, key


def test_scaling_and_a_rollout_under_load_fail_no_request(stack, live_endpoint):
    path, runtime, host, key = live_endpoint
    with Load(stack.router_url, host, key) as load:
        for capacity in (3, 1, 2):
            scale(stack, path, "blue", capacity)
            assert len(stack.replicas("blue")) == capacity
        deploy(stack, path, runtime, "green", 1)
        set_traffic(stack, path, {"blue": 90, "green": 10})
        assert eventually(lambda: load.served["green"] > 0)
        set_traffic(stack, path, {"blue": 0, "green": 100})
        switched = load.served["green"]
        # Once every router process serves the new split, blue gets nothing more. (Each
        # process takes the table on its own notification: on a starved machine one may
        # follow a moment later, so "settled" is blue's count once it stopped moving.)
        assert eventually(lambda: load.served["green"] > switched + 50)
        settled = steady(lambda: load.served["blue"])
        mark = load.served["green"]
        assert eventually(lambda: load.served["green"] > mark + 150)
    print(f"scale 2→3→1→2 and blue→green under load: {load.summary()}")
    assert load.total() > 500, load.summary()
    assert load.failures == [], load.summary()
    assert load.served["blue"] == settled, "blue still served after 0/100"


def steady(count, still: float = 1.0, timeout: float = 15.0) -> int:
    """``count()`` once it has not changed for ``still`` seconds (at most ``timeout``)."""
    deadline = time.monotonic() + timeout
    value, since = count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = count()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= still:
            break
    return value


def test_a_killed_replica_fails_no_request(stack, live_endpoint):
    path, _, host, key = live_endpoint
    with Load(stack.router_url, host, key) as load:
        assert eventually(lambda: load.total() > 100)
        victim = next(r for r in stack.agent_status("blue")["replicas"] if r["state"] == "ready")
        before = load.total()
        killed = time.monotonic()
        os.killpg(victim["pid"], signal.SIGKILL)

        def both_ready() -> bool:
            replicas = stack.agent_status("blue")["replicas"]
            restarted = [r for r in replicas if r["name"] == victim["name"]]
            return (
                bool(restarted)
                and restarted[0]["restarts"] > victim["restarts"]
                and all(r["state"] == "ready" for r in replicas)
            )

        assert eventually(both_ready, timeout=30), stack.agent_status("blue")
        back = time.monotonic() - killed
        assert eventually(lambda: load.total() > before + 200)
    print(f"replica SIGKILL under load, both ready again after {back:.2f} s: {load.summary()}")
    assert load.failures == [], load.summary()


def test_a_leaving_replica_leaves_the_routing_table_before_it_stops(stack, live_endpoint):
    """Scale 2→1: the replica the agent picks to stop is gone from the router's table while
    its process still runs (so no new request reaches a replica that is shutting down)."""
    path, _, host, _ = live_endpoint
    table = redis.Redis.from_url(
        stack.env.get("WEIR_ROUTING_REDIS_URL") or stack.env["CELERY_BROKER_URL"]
    )
    pids = {r["address"]: r["pid"] for r in stack.agent_status("blue")["replicas"]}
    assert len(pids) == 2

    def routed() -> set[str]:
        entry = json.loads(table.hget(ROUTES, host.rsplit(":", 1)[0]))
        return set(entry["deployments"]["blue"]["replicas"])

    assert routed() == set(pids)
    response = stack.call("PATCH", f"{path}/deployments/blue", {"sku": {"capacity": 1}})
    assert response.status_code == 202, response.text
    # What the router's table holds and which replica processes run, every few ms.
    observations = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        in_table, running = routed(), {a for a, pid in pids.items() if alive(pid)}
        observations.append((in_table, running))
        if len(in_table) == 1 and len(running) == 1:
            break
        time.sleep(0.01)
    status = stack.wait_for_status(response.headers["Azure-AsyncOperation"], 60)
    assert status["status"] == "Succeeded", status
    (kept,) = routed()
    (left,) = set(pids) - {kept}
    assert any(left not in in_table and left in running for in_table, running in observations)
    assert not any(left in in_table and left not in running for in_table, running in observations)


def alive(pid: int) -> bool:
    """The process runs (a zombie waiting for its parent to reap it does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
