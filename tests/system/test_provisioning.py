"""Provisioning for real: scikit-learn models behind replicas built from uploaded assets."""

import json
import signal
import time
from pathlib import Path

import joblib
import numpy
import pytest
import requests

from tests import replica_client

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "online"
SAMPLE = json.loads((EXAMPLES / "model-1" / "sample-request.json").read_text())
SKLEARN_CONDA = (EXAMPLES / "model-1" / "environment" / "conda.yaml").read_text()
BROKEN_SCORE = b"def init():\n    raise RuntimeError('cannot find the model file')\n\n" + (
    b"def run(data):\n    return data\n"
)


def expected(model_dir: Path) -> list:
    model = joblib.load(model_dir / "sklearn_regression_model.pkl")
    return model.predict(numpy.array(SAMPLE["data"])).tolist()


def register(stack, workspace, collection, name, version, properties):
    response = stack.call("PUT", f"{workspace}/{collection}/{name}/versions/{version}", properties)
    assert response.status_code == 201, response.text


def upload_dir(stack, workspace, directory: Path, collection: str) -> str:
    """Upload a directory as Azure's SDK does; returns the URI of the directory itself."""
    files = {
        f"{directory.name}/{path.relative_to(directory)}": path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file()
    }
    return stack.upload(workspace, files, collection) + f"/{directory.name}"


def put_and_wait(stack, path: str, body: dict, timeout: float = 600) -> dict:
    response = stack.call("PUT", path, body)
    assert response.status_code in (200, 201), response.text
    return stack.wait_for_status(response.headers["Azure-AsyncOperation"], timeout=timeout)


def patch_and_wait(stack, path: str, body: dict) -> requests.Response:
    response = stack.call("PATCH", path, body)
    assert response.status_code == 202, response.text
    return stack.wait_for_location(response.headers["Location"], timeout=300)


def deployment(model: str, capacity: int, code="score:1", env="sklearn:1") -> dict:
    return {
        "location": "local",
        "sku": {"name": "Default", "capacity": capacity},
        "properties": {
            "endpointComputeType": "Managed",
            "model": f"azureml:{model}",
            "environmentId": f"azureml:{env}",
            "codeConfiguration": {"codeId": f"azureml:{code}", "scoringScript": "score.py"},
            "requestSettings": {"maxConcurrentRequestsPerInstance": 1},
        },
    }


def score_all(stack, name: str) -> list:
    return [
        replica_client.post(address, json=SAMPLE, timeout=10).json()
        for address in stack.replicas(name)
    ]


def test_a_scikit_learn_model_served_scaled_rolled_and_deleted(stack, workspace, models):
    v1, v2 = models["model-1"], models["model-2"]
    register(
        stack,
        workspace,
        "models",
        "diabetes",
        "1",
        {"properties": {"modelUri": upload_dir(stack, workspace, v1, "models")}},
    )
    register(
        stack,
        workspace,
        "models",
        "diabetes",
        "2",
        {"properties": {"modelUri": upload_dir(stack, workspace, v2, "models")}},
    )
    code_uri = upload_dir(stack, workspace, EXAMPLES / "model-1" / "onlinescoring", "codes")
    register(stack, workspace, "codes", "score", "1", {"properties": {"codeUri": code_uri}})
    environment = {"properties": {"image": "python:3.11-slim", "condaFile": SKLEARN_CONDA}}
    register(stack, workspace, "environments", "sklearn", "1", environment)

    endpoint = f"{workspace}/onlineEndpoints/diabetes"
    put_and_wait(stack, endpoint, {"location": "local", "properties": {"authMode": "Key"}})
    blue = f"{endpoint}/deployments/blue"
    status = put_and_wait(stack, blue, deployment("diabetes:1", 2))
    assert status["status"] == "Succeeded", status
    answers = score_all(stack, "blue")
    assert len(answers) == 2
    for answer in answers:
        assert answer == pytest.approx(expected(v1))

    assert patch_and_wait(stack, blue, {"sku": {"capacity": 3}}).json()["sku"]["capacity"] == 3
    assert len(score_all(stack, "blue")) == 3
    assert patch_and_wait(stack, blue, {"sku": {"capacity": 1}}).status_code == 200
    assert len(stack.replicas("blue")) == 1

    # Roll to model v2 while a client keeps sending requests to the ready replicas.
    response = stack.call("PUT", blue, deployment("diabetes:2", 1))
    assert response.status_code == 200
    failures, seen_v2 = [], False
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = stack.call("GET", response.headers["Azure-AsyncOperation"]).json()["status"]
        for address in stack.replicas("blue")[:1]:
            try:
                answer = replica_client.post(address, json=SAMPLE, timeout=10)
                if answer.status_code != 200:
                    failures.append(answer.status_code)
                elif answer.json() == pytest.approx(expected(v2)):
                    seen_v2 = True
            except OSError as exc:
                failures.append(repr(exc))
        if state != "InProgress":
            break
    assert state == "Succeeded"
    assert failures == []
    assert seen_v2 and score_all(stack, "blue") == [pytest.approx(expected(v2))]

    pids = [r["pid"] for r in stack.agent_status("blue")["replicas"]]
    deleted = stack.call("DELETE", endpoint)
    assert stack.wait_for_location(deleted.headers["Location"], timeout=120).status_code == 204
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists()


def with_packages(stack, workspace, name: str, packages: list[str]) -> dict:
    """Deployment properties running the trivial script in an environment of ``packages``."""
    runtime = stack.register_runtime(workspace)
    conda = "dependencies:\n  - pip\n  - pip:\n" + "".join(f"      - {p}\n" for p in packages)
    environment = {"properties": {"image": "python:3.11-slim", "condaFile": conda}}
    register(stack, workspace, "environments", name, "1", environment)
    runtime["environmentId"] = f"azureml:{name}:1"
    return runtime


def new_endpoint(stack, workspace, name: str) -> str:
    endpoint = f"{workspace}/onlineEndpoints/{name}"
    put_and_wait(stack, endpoint, {"location": "local", "properties": {"authMode": "Key"}})
    return endpoint


def one_replica(runtime: dict) -> dict:
    return {
        "location": "local",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {"endpointComputeType": "Managed", **runtime},
    }


def get_logs(stack, deployment_path: str, container: str) -> str:
    body = {"containerType": container}
    return stack.call("POST", f"{deployment_path}/getLogs", body).json()["content"]


def test_a_second_deployment_reuses_the_built_environment(stack, workspace):
    endpoint = new_endpoint(stack, workspace, "cached")
    body = one_replica(stack.register_runtime(workspace))
    for name in ("first", "second"):
        started = time.monotonic()
        assert put_and_wait(stack, f"{endpoint}/deployments/{name}", body)["status"] == "Succeeded"
        print(f"{name}: create to Succeeded in {time.monotonic() - started:.2f}s")
    log = get_logs(stack, f"{endpoint}/deployments/second", "StorageInitializer")
    assert "is cached; reusing it" in log
    assert "building environment" not in log


def test_an_init_that_raises_fails_the_deployment_with_the_exception(stack, workspace):
    code_uri = stack.upload(workspace, {"score.py": BROKEN_SCORE}, "codes")
    register(stack, workspace, "codes", "broken", "1", {"properties": {"codeUri": code_uri}})
    runtime = stack.register_runtime(workspace)
    runtime["codeConfiguration"]["codeId"] = "azureml:broken:1"
    deployment_path = f"{new_endpoint(stack, workspace, 'broken')}/deployments/blue"
    status = put_and_wait(stack, deployment_path, one_replica(runtime))
    assert status["status"] == "Failed"
    assert "cannot find the model file" in status["error"]["message"]
    assert "cannot find the model file" in json.dumps(status["error"]["details"])
    got = stack.call("GET", deployment_path).json()
    assert got["properties"]["provisioningState"] == "Failed"
    logs = get_logs(stack, deployment_path, "InferenceServer")
    assert "RuntimeError: cannot find the model file" in logs


def test_an_unknown_pip_package_fails_the_deployment_naming_it(stack, workspace):
    runtime = with_packages(stack, workspace, "nosuch", ["weir-no-such-package-4242"])
    deployment_path = f"{new_endpoint(stack, workspace, 'nopkg')}/deployments/blue"
    status = put_and_wait(stack, deployment_path, one_replica(runtime))
    assert status["status"] == "Failed"
    assert status["error"]["code"] == "EnvironmentBuildFailed"
    assert "no such package: weir-no-such-package-4242" in status["error"]["message"]


def test_a_worker_killed_mid_provision_still_ends_in_a_terminal_state(stack, workspace):
    # A fresh environment, so the worker is busy building it when it dies.
    runtime = with_packages(stack, workspace, "withsix", ["six==1.16.0"])
    deployment_path = f"{new_endpoint(stack, workspace, 'killed')}/deployments/blue"
    response = stack.call("PUT", deployment_path, one_replica(runtime))
    deadline = time.monotonic() + 60
    while "building environment" not in get_logs(stack, deployment_path, "StorageInitializer"):
        assert time.monotonic() < deadline, "the build never started"
        time.sleep(0.05)
    stack.stop_worker(signal.SIGKILL)  # the worker and its pip, mid-build
    stack.start_worker()
    # Nothing re-delivers the task soon: the reconciler re-drives it once its lease lapses.
    status = stack.wait_for_status(response.headers["Azure-AsyncOperation"], timeout=300)
    assert status["status"] == "Succeeded", status
