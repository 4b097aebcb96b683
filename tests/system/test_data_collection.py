"""Model data collection (payload logging) on the real stack: what a deployment with
dataCollector request/response enabled writes to the workspace's blob store, read back with
azure-storage-blob; nothing for a deployment without it; scoring unharmed when the blob
store is down, the dropped records counted."""

from __future__ import annotations

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import time
from functools import partial
from urllib.parse import urlsplit

import pytest
import requests

from tests.system import test_router
from tests.system.conftest import ROOT, _wait_until_serving

pytestmark = pytest.mark.system

COLLECTING = {
    "collections": {
        "request": {"dataCollectionMode": "Enabled"},
        "response": {"dataCollectionMode": "Enabled"},
    },
    "rollingRate": "Hour",
}
LAYOUT = re.compile(
    r"^modelDataCollector/[a-z0-9-]+/(?P<deployment>[a-z0-9-]+)/(?P<collection>request|response)"
    r"/\d{4}/\d{2}/\d{2}/\d{2}/[^/]+\.jsonl$"
)


# Blob writes are batched about once a second: waits here allow 30 s.
eventually = partial(test_router.eventually, timeout=30.0)


@pytest.fixture
def endpoint(stack, workspace):
    """An endpoint with two deployments of the echo script: ``collects`` (dataCollector
    request and response enabled, all traffic) and ``quiet`` (no dataCollector)."""
    runtime = stack.register_runtime(workspace)
    path = f"{workspace}/onlineEndpoints/logged"
    created = stack.call("PUT", path, {"location": "local", "properties": {"authMode": "Key"}})
    stack.wait_for_status(created.headers["Azure-AsyncOperation"])
    for name, extra in (("collects", {"dataCollector": COLLECTING}), ("quiet", {})):
        body = {
            "location": "local",
            "sku": {"name": "Default", "capacity": 1},
            "properties": {"endpointComputeType": "Managed", **runtime, **extra},
        }
        response = stack.call("PUT", f"{path}/deployments/{name}", body)
        assert response.status_code == 201, response.text
        status = stack.wait_for_status(response.headers["Azure-AsyncOperation"], 180)
        assert status["status"] == "Succeeded", status
    body = {"location": "local", "properties": {"authMode": "Key", "traffic": {"collects": 100}}}
    stack.wait_for_status(stack.call("PUT", path, body).headers["Azure-AsyncOperation"])
    shown = stack.call("GET", f"{path}/deployments/collects").json()
    request = shown["properties"]["dataCollector"]["collections"]["request"]
    assert (request["dataCollectionMode"], request["samplingRate"]) == ("Enabled", 1.0)
    return path


def scorer(stack, endpoint: str):
    host = urlsplit(stack.call("GET", endpoint).json()["properties"]["scoringUri"]).netloc
    key = stack.call("POST", f"{endpoint}/listKeys").json()["primaryKey"]

    def score(payload, deployment: str | None = None) -> requests.Response:
        headers = {"Host": host, "Authorization": f"Bearer {key}"}
        if deployment:
            headers["azureml-model-deployment"] = deployment
        return requests.post(f"{stack.router_url}/score", json=payload, headers=headers, timeout=10)

    assert eventually(lambda: score({}).status_code == 200), "the router never served"
    return score


def datastore(stack, workspace: str):
    """The workspaceblobstore container, through azure-storage-blob with listSecrets' SAS."""
    secrets = stack.call("POST", f"{workspace}/datastores/workspaceblobstore/listSecrets").json()
    properties = stack.call("GET", f"{workspace}/datastores/workspaceblobstore").json()[
        "properties"
    ]
    account, container = properties["accountName"], properties["containerName"]
    return stack.container_client(f"{stack.blob_url}/{account}/{container}?{secrets['sasToken']}")


def collected(container, deployment: str, endpoint: str = "logged") -> dict[str, list[dict]]:
    """collection -> its records, read back from every blob under the deployment's folder."""
    found: dict[str, list[dict]] = {"request": [], "response": []}
    prefix = f"modelDataCollector/{endpoint}/{deployment}/"
    for blob in container.list_blobs(name_starts_with=prefix):
        match = LAYOUT.match(blob.name)
        assert match, f"not Azure's layout: {blob.name}"
        content = container.download_blob(blob.name).readall()
        found[match["collection"]] += [json.loads(line) for line in content.splitlines()]
    return found


def test_each_scored_request_is_collected_as_azure_lays_it_out(stack, workspace, endpoint):
    score = scorer(stack, endpoint)
    container = datastore(stack, workspace)
    # The warm-up requests above were collected too: count from what is there now.
    eventually(lambda: len(collected(container, "collects")["response"]) >= 1)
    before = {r["xrequestid"] for r in collected(container, "collects")["request"]}

    sent = {}
    for number in range(20):
        answer = score({"data": [[number, number + 1]]})
        assert answer.status_code == 200
        sent[answer.headers["x-request-id"]] = ({"data": [[number, number + 1]]}, answer.json())

    def all_written():
        records = collected(container, "collects")
        fresh = {
            kind: {r["xrequestid"]: r for r in records[kind] if r["xrequestid"] not in before}
            for kind in ("request", "response")
        }
        return fresh if all(len(fresh[k]) >= len(sent) for k in fresh) else None

    fresh = eventually(all_written)
    assert fresh, "the records of 20 scored requests were not all written"
    assert set(fresh["request"]) == set(fresh["response"]) == set(sent)
    deployment_id = f"{endpoint}/deployments/collects"
    for request_id, (payload, answer) in sent.items():
        request, response = fresh["request"][request_id], fresh["response"][request_id]
        assert request["type"] == "azureml.inference.request"
        assert response["type"] == "azureml.inference.response"
        assert request["data"] == payload
        assert response["data"] == answer
        for record in (request, response):
            assert record["specversion"] == "1.0"
            assert record["source"].lower() == deployment_id.lower()
            assert record["correlationid"] == record["xrequestid"] == request_id
            assert record["datacontenttype"] == "application/json"
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["time"])
        assert (request["method"], request["path"]) == ("POST", "/score")

    # The folder is a datastore path the v2 API takes, as Azure's data assets point at it.
    uri = (
        "azureml://datastores/workspaceblobstore/paths/modelDataCollector/logged/collects/request/"
    )
    data = {"properties": {"dataType": "uri_folder", "dataUri": uri}}
    registered = stack.call("PUT", f"{workspace}/data/logged-collects-request/versions/1", data)
    assert registered.status_code == 201, registered.text

    # A deployment without dataCollector writes nothing, however much it scores.
    for number in range(10):
        assert score({"n": number}, deployment="quiet").status_code == 200
    marker = score({"after": "quiet"})  # collected after the quiet ones were answered
    assert eventually(
        lambda: any(
            r["xrequestid"] == marker.headers["x-request-id"]
            for r in collected(container, "collects")["request"]
        )
    )
    time.sleep(2)  # two more flush intervals for the quiet replica, had it a collector
    assert collected(container, "quiet") == {"request": [], "response": []}


def metrics(stack, deployment: str) -> str:
    """The collector's /metrics of the deployment's (one) replica, on its own socket."""
    (address,) = stack.replicas(deployment)
    path = address.removeprefix("unix:") + ".metrics"

    class UnixConnection(http.client.HTTPConnection):
        def connect(self):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(path)

    connection = UnixConnection("replica", timeout=5)
    connection.request("GET", "/metrics")
    return connection.getresponse().read().decode()


def dropped(text: str, collection: str, reason: str) -> int:
    pattern = (
        rf'weir_data_collector_dropped_total\{{collection="{collection}",reason="{reason}"\}} (\d+)'
    )
    return int(re.search(pattern, text)[1])


def test_a_collector_that_cannot_write_drops_and_counts_and_scoring_goes_on(
    stack, workspace, endpoint
):
    score = scorer(stack, endpoint)
    before = dropped(metrics(stack, "collects"), "request", "write_failed")
    blob_server = stack.servers[1]
    blob_server.send_signal(signal.SIGTERM)
    blob_server.wait(timeout=30)
    try:
        answers = [score({"data": [[n]]}).status_code for n in range(15)]
        assert answers == [200] * 15
        assert eventually(
            lambda: dropped(metrics(stack, "collects"), "request", "write_failed") >= before + 15
        )
        text = metrics(stack, "collects")
        assert dropped(text, "response", "write_failed") >= before + 15
    finally:
        port = urlsplit(stack.blob_url).port
        log = open(f"{stack.env['WEIR_DATA_DIR']}/server.log", "ab")  # noqa: SIM115
        stack.servers[1] = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--blob", "--bind", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=stack.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _wait_until_serving(stack.blob_url, stack.ca_bundle, stack.servers[1])
    # With the blob store back, what is scored is written again.
    container = datastore(stack, workspace)
    marker = score({"back": True}).headers["x-request-id"]
    assert eventually(
        lambda: any(r["xrequestid"] == marker for r in collected(container, "collects")["response"])
    )
