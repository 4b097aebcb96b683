"""Scoring quotas by credential on the real stack: the router's processes enforce them
together, a key regenerated with an overlap works until its window ends, and the usage the
routers report is read back through the API."""

import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests

from tests.system.test_router import BEHAVES, eventually, set_traffic

pytestmark = pytest.mark.system


def fresh(stack, uri, key, data="hello"):
    """A request on a connection of its own: the kernel spreads such connections over the
    router's serving processes."""
    headers = {
        "Host": urlsplit(uri).netloc,
        "Authorization": f"Bearer {key}",
        "Connection": "close",
    }
    return requests.post(f"{stack.router_url}/score", data=data, headers=headers, timeout=30)


def test_quotas_hold_across_router_processes_and_rotation_overlaps(stack, workspace):
    runtime = stack.register_runtime(workspace)
    code_uri = stack.upload(workspace, {"score.py": BEHAVES}, "codes")
    stack.call(
        "PUT", f"{workspace}/codes/behaves/versions/1", {"properties": {"codeUri": code_uri}}
    )
    runtime["codeConfiguration"]["codeId"] = "azureml:behaves:1"
    path = f"{workspace}/onlineEndpoints/quotas"
    created = stack.call("PUT", path, {"location": "local", "properties": {"authMode": "Key"}})
    stack.wait_for_status(created.headers["Azure-AsyncOperation"])
    body = {
        "location": "local",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {
            "endpointComputeType": "Managed",
            **runtime,
            "requestSettings": {"maxConcurrentRequestsPerInstance": 4},
        },
    }
    response = stack.call("PUT", f"{path}/deployments/blue", body)
    assert (
        stack.wait_for_status(response.headers["Azure-AsyncOperation"], 120)["status"]
        == "Succeeded"
    )
    set_traffic(stack, path, {"blue": 100})
    uri = stack.call("GET", path).json()["properties"]["scoringUri"]
    keys = stack.call("POST", f"{path}/listKeys").json()
    primary, secondary = keys["primaryKey"], keys["secondaryKey"]
    assert eventually(lambda: fresh(stack, uri, secondary).status_code == 200)

    # Bad specs change nothing.
    bad = stack.call("PUT", f"{path}/keyQuotas", {"primaryKey": {"requestsPerSecond": 0}})
    assert bad.status_code == 400
    assert bad.json()["error"]["target"] == "primaryKey.requestsPerSecond"
    assert stack.call("GET", f"{path}/keyQuotas").json()["primaryKey"] is None

    quotas = {
        "primaryKey": {"requestsPerSecond": 5, "burst": 5},
        "secondaryKey": {"maxConcurrentRequests": 1},
    }
    assert stack.call("PUT", f"{path}/keyQuotas", quotas).status_code == 200

    # The primary key: a burst of 5, then 429 with Retry-After; the secondary key goes on.
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: fresh(stack, uri, primary), range(12)))
    elapsed = time.monotonic() - started
    codes = [a.status_code for a in answers]
    admitted = codes.count(200)
    assert set(codes) == {200, 429} and admitted >= 5, codes
    # The burst, and what refilled at 5/s meanwhile, whichever process each one reached.
    assert admitted <= 5 + 5 * elapsed + 1, (codes, elapsed)
    refused = answers[codes.index(429)]
    assert refused.headers["retry-after"] == "1"
    assert "rate limit" in refused.json()["message"]
    assert [fresh(stack, uri, secondary).status_code for _ in range(5)] == [200] * 5

    # The secondary key takes one request at a time, whichever process gets the second.
    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(fresh, stack, uri, secondary, "sleep:2")
        time.sleep(0.5)
        second = fresh(stack, uri, secondary, "sleep:0")
        assert slow.result().status_code == 200
    assert second.status_code == 429 and second.headers["retry-after"] == "1"
    assert "maxConcurrentRequests" in second.json()["message"]

    # What the routers counted, read back through the API: more than one serving process
    # reported, and together they saw what the clients saw.
    def usage():
        return stack.call("GET", f"{path}/keyUsage").json()

    def counted():
        seen = usage()
        return (
            seen["primaryKey"]["requestsLastMinute"],
            seen["primaryKey"]["throttledLastMinute"],
            seen["secondaryKey"]["throttledLastMinute"],
        ) == (admitted, 12 - admitted, 1) and seen

    seen = eventually(counted)
    assert seen, usage()
    # 5 + the slow one, and the probes that waited for the endpoint to serve.
    assert seen["secondaryKey"]["requestsLastMinute"] >= 6
    assert seen["reportingProcesses"] >= 2, seen
    # Every place taken is given back (reports lag by up to a second).
    assert eventually(lambda: usage()["secondaryKey"]["inFlight"] == 0)
    assert 0 <= seen["primaryKey"]["availableTokens"] <= 5

    # Rotation with an overlap: the old secondary key works beside the new one until the
    # window ends, then is refused, with no further change made.
    window = 4
    rotated = stack.call(
        "POST", f"{path}/regenerateKeys", {"keyType": "Secondary", "overlapSeconds": window}
    )
    ends = time.monotonic() + window
    assert rotated.status_code == 200
    new = stack.call("POST", f"{path}/listKeys").json()["secondaryKey"]
    assert new != secondary
    assert eventually(lambda: fresh(stack, uri, new).status_code == 200)
    assert fresh(stack, uri, secondary).status_code == 200
    assert time.monotonic() < ends  # still in the window when it was accepted
    assert eventually(lambda: fresh(stack, uri, secondary).status_code == 401, timeout=window + 5)
    assert time.monotonic() >= ends - 0.5  # refused only once the window ended
    assert fresh(stack, uri, new).status_code == 200
