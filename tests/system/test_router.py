"""Scoring through the real router: auth, traffic split, header override, who served."""

import collections
import time
from urllib.parse import urlsplit

import pytest
import requests

pytestmark = pytest.mark.system


def score(stack, scoring_uri: str, credential: str | None, **headers) -> requests.Response:
    host = urlsplit(scoring_uri).netloc
    if credential:
        headers["Authorization"] = f"Bearer {credential}"
    return requests.post(
        f"{stack.router_url}/score", data="{}", headers={"Host": host, **headers}, timeout=10
    )


def eventually(check, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


@pytest.fixture
def endpoint(routed_endpoint):
    """An endpoint with two one-replica deployments, blue and green, answering who they are."""
    return routed_endpoint


def set_traffic(stack, path: str, traffic: dict) -> None:
    body = {"location": "local", "properties": {"authMode": "Key", "traffic": traffic}}
    response = stack.call("PUT", path, body)
    assert response.status_code == 200, response.text
    stack.wait_for_status(response.headers["Azure-AsyncOperation"])


def test_keys_traffic_and_header_routing(stack, endpoint):
    set_traffic(stack, endpoint, {"blue": 100, "green": 0})
    scoring_uri = stack.call("GET", endpoint).json()["properties"]["scoringUri"]
    keys = stack.call("POST", f"{endpoint}/listKeys").json()

    served = eventually(lambda: score(stack, scoring_uri, keys["primaryKey"]).status_code == 200)
    assert served, "the router never served the endpoint"
    response = score(stack, scoring_uri, keys["primaryKey"])
    assert response.json() == {"who": "blue"}
    assert response.headers["azureml-model-deployment"] == "blue"
    assert score(stack, scoring_uri, keys["secondaryKey"]).status_code == 200
    assert score(stack, scoring_uri, "not-a-key").status_code == 401
    assert score(stack, scoring_uri, None).status_code == 401

    # The header reaches a deployment whatever its share, even 0%.
    override = score(
        stack, scoring_uri, keys["primaryKey"], **{"azureml-model-deployment": "green"}
    )
    assert override.json() == {"who": "green"}
    unknown = score(stack, scoring_uri, keys["primaryKey"], **{"azureml-model-deployment": "red"})
    assert unknown.status_code == 404

    # Shares follow the weights.
    set_traffic(stack, endpoint, {"blue": 30, "green": 70})
    time.sleep(0.5)
    counts = collections.Counter(
        score(stack, scoring_uri, keys["primaryKey"]).json()["who"] for _ in range(300)
    )
    assert 0.20 < counts["blue"] / 300 < 0.40, counts

    set_traffic(stack, endpoint, {"blue": 0, "green": 0})
    assert eventually(lambda: score(stack, scoring_uri, keys["primaryKey"]).status_code == 404)

    # A regenerated key stops working within a second.
    set_traffic(stack, endpoint, {"blue": 100, "green": 0})
    stack.call("POST", f"{endpoint}/regenerateKeys", {"keyType": "Primary"})
    refused = eventually(
        lambda: score(stack, scoring_uri, keys["primaryKey"]).status_code == 401, timeout=1.0
    )
    assert refused
    new = stack.call("POST", f"{endpoint}/listKeys").json()["primaryKey"]
    assert eventually(lambda: score(stack, scoring_uri, new).status_code == 200)


def test_aml_tokens_are_checked(stack, workspace):
    runtime = stack.register_runtime(workspace)
    path = f"{workspace}/onlineEndpoints/tokened"
    created = stack.call("PUT", path, {"location": "local", "properties": {"authMode": "AMLToken"}})
    stack.wait_for_status(created.headers["Azure-AsyncOperation"])
    body = {
        "location": "local",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {"endpointComputeType": "Managed", **runtime},
    }
    response = stack.call("PUT", f"{path}/deployments/blue", body)
    stack.wait_for_status(response.headers["Azure-AsyncOperation"], 120)
    traffic = {
        "location": "local",
        "properties": {"authMode": "AMLToken", "traffic": {"blue": 100}},
    }
    stack.wait_for_status(stack.call("PUT", path, traffic).headers["Azure-AsyncOperation"])
    scoring_uri = stack.call("GET", path).json()["properties"]["scoringUri"]
    token = stack.call("POST", f"{path}/token").json()["accessToken"]
    assert eventually(lambda: score(stack, scoring_uri, token).status_code == 200)
    assert score(stack, scoring_uri, token[:-3] + "AAA").status_code == 401
    keys = stack.call("POST", f"{path}/listKeys").json()
    assert score(stack, scoring_uri, keys["primaryKey"]).status_code == 401


BEHAVES = b"""import os, time

def init():
    pass

def run(raw):
    if raw.startswith('sleep:'):
        time.sleep(float(raw[6:]))
        return 'slept'
    if raw == 'crash':
        raise ValueError('the model cannot score this')
    if raw == 'exit':
        os._exit(1)
    return 'ok'
"""


def post(stack, scoring_uri, key, data, **kwargs):
    headers = {"Host": urlsplit(scoring_uri).netloc, "Authorization": f"Bearer {key}"}
    return requests.post(
        f"{stack.router_url}/score", data=data, headers=headers, timeout=30, **kwargs
    )


def test_request_limits_answer_with_azures_status_codes(stack, workspace):
    from concurrent.futures import ThreadPoolExecutor

    runtime = stack.register_runtime(workspace)
    code_uri = stack.upload(workspace, {"score.py": BEHAVES}, "codes")
    stack.call(
        "PUT", f"{workspace}/codes/behaves/versions/1", {"properties": {"codeUri": code_uri}}
    )
    runtime["codeConfiguration"]["codeId"] = "azureml:behaves:1"
    path = f"{workspace}/onlineEndpoints/limits"
    created = stack.call("PUT", path, {"location": "local", "properties": {"authMode": "Key"}})
    stack.wait_for_status(created.headers["Azure-AsyncOperation"])
    body = {
        "location": "local",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {
            "endpointComputeType": "Managed",
            **runtime,
            "requestSettings": {
                "maxConcurrentRequestsPerInstance": 1,
                "requestTimeout": "PT1.5S",
                "maxQueueWait": "PT3S",
            },
        },
    }
    response = stack.call("PUT", f"{path}/deployments/blue", body)
    assert (
        stack.wait_for_status(response.headers["Azure-AsyncOperation"], 120)["status"]
        == "Succeeded"
    )
    set_traffic(stack, path, {"blue": 100})
    uri = stack.call("GET", path).json()["properties"]["scoringUri"]
    key = stack.call("POST", f"{path}/listKeys").json()["primaryKey"]
    assert eventually(lambda: post(stack, uri, key, "hello").status_code == 200)

    # One replica taking one request at a time: 2 x 1 x 1 = 2 may be in the router; the
    # second waits for the first, the others are refused at once.
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(post, stack, uri, key, "sleep:0.8")
        time.sleep(0.2)
        others = [pool.submit(post, stack, uri, key, "sleep:0.1") for _ in range(3)]
        answers = [first.result(), *(f.result() for f in others)]
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 200, 429, 429], codes
    waited = [a for a in answers[1:] if a.status_code == 200][0]
    assert float(waited.headers["ms-azureml-queue-time-ms"]) > 300
    refused = [a for a in answers if a.status_code == 429][0]
    assert refused.headers["retry-after"] and "pending" in refused.json()["message"]

    slow = post(stack, uri, key, "sleep:3")
    assert slow.status_code == 408 and "requestTimeout" in slow.json()["message"]
    assert eventually(lambda: post(stack, uri, key, "hello").status_code == 200)

    crashed = post(stack, uri, key, "crash")
    assert crashed.status_code == 424
    assert crashed.headers["ms-azureml-model-error-statuscode"] == "500"
    assert "the model cannot score this" in crashed.json()["message"]
    assert crashed.headers["azureml-model-deployment"] == "blue"

    too_big = post(stack, uri, key, b"x" * (100 * 1024 * 1024 + 1))
    assert too_big.status_code == 413

    died = post(stack, uri, key, "exit")
    assert died.status_code == 502 and "blue" in died.json()["message"]


def test_the_router_restarts_and_rides_out_a_lost_feed(stack, endpoint, tmp_path):
    """A second router, fed by a Redis of its own: a restart loses nothing, and with its
    Redis gone it keeps serving the last table."""
    import shutil
    import signal
    import subprocess
    import sys

    import redis as redis_client

    from tests.system.conftest import ROOT, free_port

    set_traffic(stack, endpoint, {"blue": 100, "green": 0})
    scoring_uri = stack.call("GET", endpoint).json()["properties"]["scoringUri"]
    key = stack.call("POST", f"{endpoint}/listKeys").json()["primaryKey"]
    assert eventually(lambda: score(stack, scoring_uri, key).status_code == 200)

    redis_port, router_port = free_port(), free_port()
    feed = subprocess.Popen(
        [
            shutil.which("redis-server"),
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
    )
    router = None

    def start_router():
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dataplane.router",
                "--port",
                str(router_port),
                "--redis-url",
                f"redis://127.0.0.1:{redis_port}/0",
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    try:
        own = redis_client.Redis(port=redis_port)
        assert eventually(lambda: _pings(own))
        # Where the stack's router reads its table (as dataplane.router picks it).
        feed_url = stack.env.get("WEIR_ROUTING_REDIS_URL") or stack.env["CELERY_BROKER_URL"]
        shared = redis_client.Redis.from_url(feed_url)
        for name in ("weir:routes", "weir:routes:signing-keys"):
            if content := shared.hgetall(name):
                own.hset(name, mapping=content)

        second = type(stack)(**{**stack.__dict__, "router_url": f"http://127.0.0.1:{router_port}"})
        router = start_router()
        assert eventually(lambda: _ok(second, scoring_uri, key), timeout=10)
        router.send_signal(signal.SIGTERM)
        router.wait(timeout=10)
        started = time.monotonic()
        router = start_router()
        assert eventually(lambda: _ok(second, scoring_uri, key), timeout=10)
        print(f"router restart to serving: {time.monotonic() - started:.2f}s")
        assert time.monotonic() - started < 2.0

        feed.terminate()
        feed.wait(timeout=10)
        for _ in range(20):
            assert score(second, scoring_uri, key).status_code == 200
    finally:
        if router is not None:
            router.terminate()
            router.wait(timeout=10)
        if feed.poll() is None:
            feed.kill()
            feed.wait()


def _pings(client) -> bool:
    try:
        return client.ping()
    except Exception:  # noqa: BLE001 - not up yet
        return False


def _ok(stack, scoring_uri, key) -> bool:
    try:
        return score(stack, scoring_uri, key).status_code == 200
    except requests.ConnectionError:
        return False


def metric(stack, name: str, **labels) -> float:
    """The value of one Prometheus sample of the router, 0 when absent."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(stack.metrics_url, timeout=5).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_mirrored_traffic_is_compared_without_touching_client_answers(stack, endpoint):
    body = {
        "location": "local",
        "properties": {
            "authMode": "Key",
            "traffic": {"blue": 100, "green": 0},
            "mirrorTraffic": {"green": 50},
        },
    }
    response = stack.call("PUT", endpoint, body)
    assert response.status_code == 200, response.text
    stack.wait_for_status(response.headers["Azure-AsyncOperation"])
    scoring_uri = stack.call("GET", endpoint).json()["properties"]["scoringUri"]
    key = stack.call("POST", f"{endpoint}/listKeys").json()["primaryKey"]
    assert eventually(lambda: score(stack, scoring_uri, key).status_code == 200)
    labels = {"endpoint": "routed", "deployment": "green"}
    before = metric(stack, "weir_router_mirror_requests_total", **labels)

    answers = [score(stack, scoring_uri, key) for _ in range(200)]
    # Every client answer came from blue, untouched by the mirror.
    assert {(a.status_code, a.text) for a in answers} == {(200, '{"who": "blue"}')}
    assert {a.headers["azureml-model-deployment"] for a in answers} == {"blue"}

    time.sleep(0.5)  # the last shadow answers are compared after the client's
    mirrored = metric(stack, "weir_router_mirror_requests_total", **labels) - before
    assert 60 <= mirrored <= 140, mirrored  # 50% of 200, within statistical tolerance
    agreed = metric(stack, "weir_router_mirror_agreements_total", **labels)
    assert agreed / mirrored < 1  # green answers differently from blue
    assert metric(stack, "weir_router_mirror_seconds_count", role="shadow", **labels) > 0
    assert (
        metric(
            stack, "weir_router_requests_total", endpoint="routed", deployment="blue", status="200"
        )
        >= 200
    )


def test_path_based_uris_swagger_and_the_access_log(stack, endpoint):
    import json
    from pathlib import Path

    set_traffic(stack, endpoint, {"blue": 100, "green": 0})
    key = stack.call("POST", f"{endpoint}/listKeys").json()["primaryKey"]
    auth = {"Authorization": f"Bearer {key}"}
    # Workspace and endpoint names match whatever their case, as in host names.
    base = f"{stack.router_url}/endpoints/{stack.workspace_name.upper()}/Routed"

    def call(method, path, **headers):
        return requests.request(method, f"{base}{path}", headers={**auth, **headers}, timeout=10)

    assert eventually(lambda: call("POST", "/score").status_code == 200)
    assert call("POST", "/score").json() == {"who": "blue"}
    assert call("POST", "/score", **{"azureml-model-deployment": "green"}).json() == {
        "who": "green"
    }
    assert call("POST", "/score", Authorization="Bearer nope").status_code == 401
    missing = requests.post(f"{stack.router_url}/endpoints/{stack.workspace_name}/nope/score")
    assert missing.status_code == 404

    # swaggerUri reaches the serving deployment's /swagger.json; this script has no schema
    # decorators, so the replica's 404 comes back as it is (not as a model error).
    swagger_uri = stack.call("GET", endpoint).json()["properties"]["swaggerUri"]
    swagger = requests.get(
        f"{stack.router_url}/swagger.json",
        headers={**auth, "Host": urlsplit(swagger_uri).netloc},
        timeout=10,
    )
    assert swagger.status_code == 404 and "Swagger not found" in swagger.json()["message"]
    assert swagger.headers["azureml-model-deployment"] == "blue"

    router_log = Path(stack.env["WEIR_DATA_DIR"]) / "router.log"

    def logged():
        lines = [
            json.loads(line) for line in router_log.read_text().splitlines() if line[:1] == "{"
        ]
        return [line for line in lines if line["path"].startswith(urlsplit(base).path)]

    def statuses():
        return {line["status"] for line in logged()}

    assert eventually(lambda: statuses() >= {200, 401}, timeout=5), statuses()
    served = logged()
    ok = next(line for line in served if line["status"] == 200)
    assert ok["deployment"] in ("blue", "green") and ok["method"] == "POST"
    assert ok["durationMs"] > 0 and ok["queueMs"] is not None and ok["requestId"]
    assert key not in router_log.read_text()
