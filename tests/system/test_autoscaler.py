"""The router's autoscaler on a TargetUtilization deployment, with the real stack: load
raises the replica count, its removal lowers it after the cool-down, never outside
min..max, and each decision is a scale event on the deployment."""

import threading
import time
from datetime import datetime
from urllib.parse import urlsplit

import pytest
import requests

pytestmark = pytest.mark.system

SLOW = (
    b"import time\ndef init():\n    pass\n\ndef run(raw):\n    time.sleep(0.2)\n    return 'ok'\n"
)


def events(stack, path: str) -> list[dict]:
    return stack.call("GET", f"{path}/scaleEvents").json()["value"]


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def test_load_scales_up_eagerly_and_down_after_the_cool_down(stack, workspace):
    runtime = stack.register_runtime(workspace)
    code_uri = stack.upload(workspace, {"score.py": SLOW}, "codes")
    stack.call("PUT", f"{workspace}/codes/slow/versions/1", {"properties": {"codeUri": code_uri}})
    runtime["codeConfiguration"]["codeId"] = "azureml:slow:1"
    endpoint = f"{workspace}/onlineEndpoints/scaled"
    created = stack.call("PUT", endpoint, {"location": "local", "properties": {"authMode": "Key"}})
    stack.wait_for_status(created.headers["Azure-AsyncOperation"])
    path = f"{endpoint}/deployments/auto"
    body = {
        "location": "local",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {
            "endpointComputeType": "Managed",
            **runtime,
            "requestSettings": {"maxConcurrentRequestsPerInstance": 1, "maxQueueWait": "PT5S"},
            "scaleSettings": {
                "scaleType": "TargetUtilization",
                "minInstances": 1,
                "maxInstances": 2,
                "pollingInterval": "PT1S",
                "targetUtilizationPercentage": 50,
            },
        },
    }
    response = stack.call("PUT", path, body)
    assert stack.wait_for_status(response.headers["Azure-AsyncOperation"], 120)["status"] == (
        "Succeeded"
    )
    body = {"location": "local", "properties": {"authMode": "Key", "traffic": {"auto": 100}}}
    stack.wait_for_status(stack.call("PUT", endpoint, body).headers["Azure-AsyncOperation"])
    uri = stack.call("GET", endpoint).json()["properties"]["scoringUri"]
    key = stack.call("POST", f"{endpoint}/listKeys").json()["primaryKey"]
    headers = {"Host": urlsplit(uri).netloc, "Authorization": f"Bearer {key}"}

    refused = []  # 429s: the two clients sit exactly at one replica's admission limit

    def post() -> int:
        """One request as a client makes it: a 429 is tried again after its Retry-After."""
        for _ in range(5):
            answer = requests.post(f"{stack.router_url}/score", "{}", headers=headers, timeout=30)
            if answer.status_code != 429:
                return answer.status_code
            refused.append(answer.headers.get("Retry-After"))
            time.sleep(float(answer.headers.get("Retry-After") or 1))
        return 429

    wait_for(lambda: post() == 200, 10, "scoring")
    time.sleep(2)  # a quiet interval: one replica is enough, nothing is decided
    assert events(stack, path) == []

    counts = []  # every replica count the agent reported while the test ran
    stop_load, stop_watch = threading.Event(), threading.Event()
    answers = []

    def load():
        while not stop_load.is_set():
            answers.append(post())

    def watch():
        while not stop_watch.is_set():
            counts.append(len(stack.agent_status("auto")["replicas"]))
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    # Two clients: as many as one replica admits (2 x maxConcurrentRequestsPerInstance).
    clients = [threading.Thread(target=load) for _ in range(2)]
    load_started = time.time()
    for client in clients:
        client.start()
    try:
        up = wait_for(
            lambda: [e for e in events(stack, path) if e["action"] == "ScaleUp"], 10, "ScaleUp"
        )[0]
        scaled_after = datetime.fromisoformat(up["decidedAt"]).timestamp() - load_started
        assert up["fromInstances"] == 1 and up["toInstances"] == 2, up
        assert up["utilizationPercentage"] > 50 and up["outcome"] == "Applied.", up
        assert up["operationId"]
        wait_for(lambda: len(stack.replicas("auto")) == 2, 30, "a second ready replica")
        assert stack.call("GET", path).json()["sku"]["capacity"] == 2
        # Two clients on two one-at-a-time replicas stay above the 50% target: at max, not scaled.
        at_max = wait_for(
            lambda: [e for e in events(stack, path) if e["action"] == "AtMaxInstances"],
            10,
            "an AtMaxInstances event",
        )[0]
        assert at_max["toInstances"] == 2 and "maxInstances is 2" in at_max["reason"], at_max
    finally:
        stop_load.set()
        for client in clients:
            client.join()
    load_stopped = time.time()

    down = wait_for(
        lambda: [e for e in events(stack, path) if e["action"] == "ScaleDown"], 20, "ScaleDown"
    )[0]
    cooled_for = datetime.fromisoformat(down["decidedAt"]).timestamp() - load_stopped
    assert down["fromInstances"] == 2 and down["toInstances"] == 1, down
    wait_for(lambda: len(stack.replicas("auto")) == 1, 30, "back to one replica")
    wait_for(lambda: stack.call("GET", path).json()["sku"]["capacity"] == 1, 10, "count 1")
    stop_watch.set()
    watcher.join()

    print(f"scaled up {scaled_after:.2f} s after load, down {cooled_for:.2f} s after it ended")
    assert scaled_after < 3.5, f"scaled up {scaled_after:.1f}s after the load began"
    assert 3 <= cooled_for < 10, f"scaled down {cooled_for:.1f}s after the load ended"
    assert set(answers) == {200}, collections_summary(answers)
    assert all(refused), "a 429 without Retry-After"
    assert len(refused) <= len(answers) // 10, f"{len(refused)} refusals in {len(answers)}"
    assert max(counts) == 2 and min(counts) >= 1, (min(counts), max(counts))
    assert len([e for e in events(stack, path) if e["action"] != "AtMaxInstances"]) == 2
    metrics = requests.get(stack.metrics_url, timeout=5).text
    assert 'weir_router_scale_decisions_total{action="ScaleUp",deployment="auto"' in metrics


def collections_summary(answers: list[int]) -> dict:
    return {status: answers.count(status) for status in set(answers)}
