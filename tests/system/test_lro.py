"""Long-running operations end to end: HTTPS server, Redis, a real Celery worker."""

import subprocess
import time

import pytest

from tests import replica_client

pytestmark = pytest.mark.system


def deployment_body(runtime: dict, capacity=1):
    return {
        "location": "local",
        "sku": {"name": "Default", "capacity": capacity},
        "properties": {"endpointComputeType": "Managed", "model": "azureml:sk:1", **runtime},
    }


def test_endpoint_and_deployment_lifecycle(stack, workspace):
    endpoint = f"{workspace}/onlineEndpoints/ep1"
    created = stack.call("PUT", endpoint, {"location": "local", "properties": {"authMode": "Key"}})
    assert created.status_code == 201
    assert created.json()["properties"]["provisioningState"] == "Creating"
    status_url = created.headers["Azure-AsyncOperation"]
    assert status_url.startswith(stack.base_url)
    assert stack.wait_for_status(status_url)["status"] == "Succeeded"
    assert stack.call("GET", endpoint).json()["properties"]["provisioningState"] == "Succeeded"

    model_uri = stack.upload(workspace, {"model.pkl": b"weights"}, "models")
    model = {"properties": {"modelUri": model_uri}}
    assert stack.call("PUT", f"{workspace}/models/sk/versions/1", model).status_code == 201
    deployment = f"{endpoint}/deployments/blue"
    created = stack.call("PUT", deployment, deployment_body(stack.register_runtime(workspace)))
    assert created.status_code == 201, created.text
    assert stack.wait_for_status(created.headers["Azure-AsyncOperation"])["status"] == "Succeeded"
    assert stack.call("GET", deployment).json()["properties"]["provisioningState"] == "Succeeded"

    scaled = stack.call("PATCH", deployment, {"sku": {"capacity": 3}})
    assert scaled.status_code == 202
    final = stack.wait_for_location(scaled.headers["Location"])
    assert final.status_code == 200
    assert final.json()["sku"]["capacity"] == 3
    assert final.json()["properties"]["provisioningState"] == "Succeeded"

    # The worker, a separate process, wrote the provisioning steps that getLogs returns.
    logs = stack.call(
        "POST", f"{deployment}/getLogs", {"containerType": "StorageInitializer", "tail": 50}
    ).json()["content"]
    assert "ScaleDeployment" in logs and "3 replica(s) ready" in logs

    # Three real replicas answer, each on its own address.
    replicas = stack.replicas("blue")
    assert len(replicas) == 3
    for address in replicas:
        answer = replica_client.post(address, data="hi", timeout=10)
        assert answer.json() == {"echo": "hi"}
    server_logs = stack.call(
        "POST", f"{deployment}/getLogs", {"containerType": "InferenceServer", "tail": 20}
    ).json()["content"]
    assert server_logs.count("--- replica ") == 3 and "init() finished" in server_logs

    traffic = {"location": "local", "properties": {"authMode": "Key", "traffic": {"blue": 100}}}
    updated = stack.call("PUT", endpoint, traffic)
    assert updated.status_code == 200
    assert stack.wait_for_status(updated.headers["Azure-AsyncOperation"])["status"] == "Succeeded"

    deleted = stack.call("DELETE", endpoint)
    assert deleted.status_code == 202
    assert stack.wait_for_location(deleted.headers["Location"]).status_code == 204
    assert stack.call("GET", endpoint).status_code == 404
    assert stack.call("GET", deployment).status_code == 404
    for address in replicas:  # every replica process is gone
        with pytest.raises(OSError):
            replica_client.post(address, data="hi", timeout=5)
    assert stack.call("DELETE", endpoint).status_code == 204


def test_keys_do_not_appear_in_a_database_dump(stack, workspace):
    endpoint = f"{workspace}/onlineEndpoints/secret-ep"
    stack.call("PUT", endpoint, {"location": "local", "properties": {"authMode": "Key"}})
    keys = stack.call("POST", f"{endpoint}/listKeys").json()
    dump = subprocess.run(
        ["pg_dump", "--data-only", stack.env["DATABASE_URL"]],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert "secret-ep" in dump  # the dump holds the endpoint row...
    assert keys["primaryKey"] not in dump  # ...but not its keys
    assert keys["secondaryKey"] not in dump


def test_the_reconciler_redrives_an_operation_whose_task_was_lost(stack, workspace):
    stack.stop_worker()
    try:
        endpoint = f"{workspace}/onlineEndpoints/lost"
        created = stack.call(
            "PUT", endpoint, {"location": "local", "properties": {"authMode": "Key"}}
        )
        assert created.status_code == 201
        # Lose the queued task, as if Redis had been restarted before any worker took it.
        import redis

        redis.Redis.from_url(stack.env["CELERY_BROKER_URL"]).flushdb()
        time.sleep(0.5)
        assert (
            stack.call("GET", created.headers["Azure-AsyncOperation"]).json()["status"]
            == "InProgress"
        )
    finally:
        stack.start_worker()
    # Nothing was queued any more: only the reconciler (beat) can finish this operation,
    # once its lease (5 s here) lapses.
    status = stack.wait_for_status(created.headers["Azure-AsyncOperation"], timeout=90)
    assert status["status"] == "Succeeded"
    assert stack.call("GET", endpoint).json()["properties"]["provisioningState"] == "Succeeded"


def test_work_queued_while_no_worker_runs_is_done_when_one_starts(stack, workspace):
    stack.stop_worker()
    try:
        endpoint = f"{workspace}/onlineEndpoints/queued"
        created = stack.call(
            "PUT", endpoint, {"location": "local", "properties": {"authMode": "Key"}}
        )
        time.sleep(0.5)
        assert stack.call("GET", endpoint).json()["properties"]["provisioningState"] == "Creating"
    finally:
        stack.start_worker()
    assert stack.wait_for_status(created.headers["Azure-AsyncOperation"])["status"] == "Succeeded"


def test_concurrent_puts_of_one_new_endpoint_create_it_once(stack, workspace):
    from concurrent.futures import ThreadPoolExecutor

    endpoint = f"{workspace}/onlineEndpoints/raced"
    body = {"location": "local", "properties": {"authMode": "Key"}}
    with ThreadPoolExecutor(8) as pool:
        codes = sorted(
            r.status_code for r in pool.map(lambda _: stack.call("PUT", endpoint, body), range(8))
        )
    # One creates it; the others see it (200, nothing changed) or are told to retry (409).
    assert codes.count(201) == 1, codes
    assert set(codes) <= {200, 201, 409}, codes
    listed = stack.call("GET", f"{workspace}/onlineEndpoints").json()["value"]
    assert [e["name"] for e in listed] == ["raced"]
