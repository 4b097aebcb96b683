"""Scale to zero on the real stack: a TargetUtilization deployment with minInstances 0 goes
to zero replicas once idle for its scaleToZeroAfter, and the first request after that is
held by the router while the agent starts a replica, then answered, saying how long it was
held. Both decisions are scale events with their reasons."""

import time
from datetime import datetime
from urllib.parse import urlsplit

import pytest
import requests

from tests.system.test_autoscaler import events, wait_for

pytestmark = pytest.mark.system


def test_an_idle_deployment_goes_to_zero_and_the_next_request_starts_a_replica(stack, workspace):
    runtime = stack.register_runtime(workspace)
    endpoint = f"{workspace}/onlineEndpoints/sleepy"
    created = stack.call("PUT", endpoint, {"location": "local", "properties": {"authMode": "Key"}})
    stack.wait_for_status(created.headers["Azure-AsyncOperation"])
    path = f"{endpoint}/deployments/zero"
    scale = {
        "scaleType": "TargetUtilization",
        "minInstances": 0,
        "maxInstances": 2,
        "pollingInterval": "PT1S",
        "targetUtilizationPercentage": 70,
        "scaleToZeroAfter": "PT3S",
    }
    body = {
        "location": "local",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {"endpointComputeType": "Managed", **runtime, "scaleSettings": scale},
    }
    response = stack.call("PUT", path, body)
    assert response.status_code == 201, response.text
    assert stack.wait_for_status(response.headers["Azure-AsyncOperation"], 120)["status"] == (
        "Succeeded"
    )
    assert stack.call("GET", path).json()["properties"]["scaleSettings"] == scale
    body = {"location": "local", "properties": {"authMode": "Key", "traffic": {"zero": 100}}}
    stack.wait_for_status(stack.call("PUT", endpoint, body).headers["Azure-AsyncOperation"])
    uri = stack.call("GET", endpoint).json()["properties"]["scoringUri"]
    key = stack.call("POST", f"{endpoint}/listKeys").json()["primaryKey"]
    headers = {"Host": urlsplit(uri).netloc, "Authorization": f"Bearer {key}"}

    def score() -> requests.Response:
        return requests.post(f"{stack.router_url}/score", '"hello"', headers=headers, timeout=30)

    warm = wait_for(lambda: (r := score()).status_code == 200 and r, 10, "a warm answer")
    assert "x-weir-cold-start-ms" not in warm.headers
    last_request = time.time()

    # Idle: to zero after scaleToZeroAfter, through a scale event and a scale operation.
    down = wait_for(
        lambda: [e for e in events(stack, path) if e["action"] == "ScaleDown"], 20, "ScaleDown"
    )[0]
    idle_for = datetime.fromisoformat(down["decidedAt"]).timestamp() - last_request
    assert (down["fromInstances"], down["toInstances"]) == (1, 0), down
    assert "no requests for 3 s (scaleToZeroAfter)" in down["reason"], down
    assert down["outcome"] == "Applied.", down
    assert 3 <= idle_for < 8, idle_for
    wait_for(lambda: stack.agent_status("zero")["replicas"] == [], 20, "no replica running")
    wait_for(lambda: stack.call("GET", path).json()["sku"]["capacity"] == 0, 10, "capacity 0")
    time.sleep(0.5)  # the scale operation has published the route without replicas

    # The first request from zero is held, then answered.
    started = time.monotonic()
    cold = score()
    took = time.monotonic() - started
    assert cold.status_code == 200, cold.text
    assert cold.json() == {"echo": '"hello"'}
    held_ms = float(cold.headers["x-weir-cold-start-ms"])
    assert 0 < held_ms <= took * 1000
    up = wait_for(
        lambda: [e for e in events(stack, path) if e["action"] == "ScaleUp"], 10, "ScaleUp"
    )[0]
    assert (up["fromInstances"], up["toInstances"]) == (0, 1), up
    assert up["reason"] == "activated: 1 request(s) waiting" and up["outcome"] == "Applied.", up
    assert len(stack.replicas("zero")) == 1
    warm_again = score()
    assert warm_again.status_code == 200 and "x-weir-cold-start-ms" not in warm_again.headers
    metrics = requests.get(stack.metrics_url, timeout=5).text
    assert 'weir_router_cold_start_seconds_count{deployment="zero"' in metrics
    assert 'weir_router_activations_total{deployment="zero"' in metrics
    print(f"to zero {idle_for:.1f} s after the last request; cold start {held_ms:.0f} ms held")
