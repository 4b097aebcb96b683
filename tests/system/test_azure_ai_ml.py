"""Azure's ML SDK v2 (azure-ai-ml, ``MLClient``), unchanged and in a virtualenv of its own,
walks the safe rollout against the real stack: tests/clients/sdk_v2_rollout.py is the walk,
written as an Azure user writes it; this test runs it and checks every step's result."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.mlflow_models import local_predictions, split_request
from tests.system.conftest import ROOT
from tests.system.test_cli import predictions

# The client's python, from the virtualenv bin/test builds (bin/_prepare.sh,
# ensure_client_venv) for tests/clients/azure-ai-ml.txt.
CLIENT_PYTHON = os.environ.get("WEIR_AZURE_AI_ML_PYTHON")
STEPS = [
    "ml_client",
    "workspace_get",
    "endpoint_create",
    "blue_create",
    "traffic_blue_100",
    "invoke_endpoint",
    "green_create",
    "mirror_green_10",
    "invoke_while_mirroring",
    "get_logs_green",
    "traffic_90_10",
    "invoke_split",
    "get_keys",
    "regenerate_keys",
    "scale_blue_to_2",
    "traffic_green_100",
    "invoke_after_switch",
    "invoke_blue",
    "invoke_green",
    "mlflow_create",
    "invoke_mlflow",
    "delete_blue",
    "delete_endpoint",
]

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        not CLIENT_PYTHON, reason="WEIR_AZURE_AI_ML_PYTHON is not set: run the suite with bin/test"
    ),
]


def client_env() -> dict:
    """The environment for the client's python: nothing of this project's virtualenv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def run_client(
    stack, script: str, timeout: int = 300, cwd=None, **variables
) -> subprocess.CompletedProcess:
    """Run one of tests/clients' scripts with the client's python, configured as the README
    tells users to (and as tests/clients/weir_sdk.py reads it), plus ``variables``."""
    env = client_env()
    env.update(
        # The one line that points the SDK at Weir (README, "Azure ML SDK v2").
        ARM_CLOUD_METADATA_URL=f"{stack.base_url}/metadata/endpoints?api-version=2019-05-01",
        # What the README tells users to do to trust Weir's certificate.
        REQUESTS_CA_BUNDLE=stack.ca_bundle,
        WEIR_TOKEN=stack.token,
        WEIR_SUBSCRIPTION=stack.subscription,
        WEIR_GROUP="rg1",
        WEIR_WORKSPACE=stack.workspace_name,
        **variables,
    )
    return subprocess.run(
        [CLIENT_PYTHON, str(ROOT / "tests" / "clients" / script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def walked(done: subprocess.CompletedProcess, expected: list[str]) -> dict:
    """The steps a client script walked (tests/clients/weir_sdk.py's ``step`` lines), each
    checked to have passed, in the order ``expected``; step name -> its detail."""
    # One JSON line per step; the SDK's progress dots may come before it on the line.
    steps = [
        json.loads(line[line.index('{"step"') :])
        for line in done.stdout.splitlines()
        if '{"step"' in line
    ]
    failed = next((step for step in steps if not step["ok"]), None)
    assert failed is None, f"step {failed['step']} failed:\n{failed['detail']}"
    assert [step["step"] for step in steps] == expected, (
        f"exit {done.returncode}; stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {step["step"]: step["detail"] for step in steps}


def test_the_snippet_weir_prints_connects_the_sdk(stack, workspace, tmp_path):
    """`weir ml-client` prints Python that, pasted as is, gives a working MLClient: the cloud
    comes from Weir's metadata document and the token from the CLI's configuration."""
    config = tmp_path / "weir-config"
    env = {**stack.env, "WEIR_CLI_CONFIG": str(config)}
    for variable in ("WEIR_URL", "WEIR_TOKEN", "WEIR_CA_BUNDLE", "WEIR_GROUP", "WEIR_WORKSPACE"):
        env.pop(variable, None)
    weir = [sys.executable, "-m", "cli"]
    subprocess.run(
        [*weir, "configure", "--url", stack.base_url, "--ca-bundle", stack.ca_bundle]
        + ["--token", "-", "--defaults", "group=rg1", f"workspace={stack.workspace_name}"]
        + [f"subscription={stack.subscription}"],
        input=stack.token + "\n",
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    snippet = subprocess.run(
        [*weir, "ml-client"], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert stack.token not in snippet
    script = tmp_path / "connect.py"
    script.write_text(
        snippet
        + "workspace = ml_client.workspaces.get()\n"
        + "print(ml_client._cloud, workspace.name, workspace.resource_group)\n"
    )
    done = subprocess.run(
        [CLIENT_PYTHON, str(script)],
        env={**client_env(), "WEIR_CLI_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["Weir", stack.workspace_name, "rg1"]


def test_the_sdk_v2_walks_the_safe_rollout(stack, workspace, models, mlflow_model, tmp_path):
    expected = tmp_path / "expected.json"
    answers = {name: predictions(path) for name, path in models.items()}
    answers["mlflow"] = local_predictions(mlflow_model)
    expected.write_text(json.dumps(answers))
    mlflow_request = tmp_path / "sample-request-mlflow.json"
    mlflow_request.write_text(json.dumps(split_request()))
    done = run_client(
        stack,
        "sdk_v2_rollout.py",
        timeout=1800,
        cwd=tmp_path,
        WEIR_EXAMPLES=str(ROOT / "examples" / "online"),
        WEIR_EXPECTED=str(expected),
        WEIR_MLFLOW_MODEL=str(mlflow_model),
        WEIR_MLFLOW_REQUEST=str(mlflow_request),
    )
    steps = walked(done, STEPS)
    # The SDK took Weir as its cloud from the metadata document, not Azure's public cloud.
    assert steps["ml_client"]["cloud"] == "Weir"


def test_what_the_service_fills_in_reads_back_through_the_sdk(stack, workspace, tmp_path):
    """Resources made with the smallest REST bodies the API takes read back through the SDK's
    entities (get, list, YAML dump) with Azure's server-side defaults, not None."""
    runtime = stack.register_runtime(workspace)
    model_uri = stack.upload(workspace, {"model.txt": b"weights"}, "models")
    model = {"properties": {"modelUri": model_uri}}
    assert stack.call("PUT", f"{workspace}/models/minimal/versions/1", model).status_code == 201
    endpoint = {"location": "local", "properties": {"authMode": "Key"}}
    response = stack.call("PUT", f"{workspace}/onlineEndpoints/bare", endpoint)
    assert response.status_code == 201, response.text
    stack.wait_for_status(response.headers["Azure-AsyncOperation"])
    deployment = {
        "location": "local",
        "properties": {"endpointComputeType": "Managed", "model": "azureml:minimal:1", **runtime},
    }
    response = stack.call("PUT", f"{workspace}/onlineEndpoints/bare/deployments/blue", deployment)
    assert response.status_code == 201, response.text
    done = run_client(stack, "sdk_v2_read_back.py", WEIR_ENDPOINT="bare", WEIR_DEPLOYMENT="blue")
    assert done.returncode == 0, done.stderr[-3000:]
    read = json.loads(done.stdout)
    [endpoint] = read["endpoint"]
    assert endpoint["auth_mode"] == "key"
    assert endpoint["scoring_uri"].endswith("/score")
    assert endpoint["public_network_access"] == "enabled"
    assert endpoint["mirror_traffic"] == {}
    [deployment] = read["deployment"]
    assert deployment["scale_settings"] == {"type": "default"}
    assert deployment["request_settings"]["request_timeout_ms"] == 5000
    assert deployment["instance_count"] == 1
    assert deployment["readiness_probe"]["failure_threshold"] == 30
    assert deployment["egress_public_network_access"] == "enabled"
    [model] = read["model"]
    assert model["name"] == "minimal" and model["version"] == "1"
    assert model["type"] == "custom_model"
    [environment] = read["environment"]
    assert environment["image"] == "python:3.11-slim"
    assert environment["os_type"] == "linux"
    [code] = read["code"]
    assert code["path"].startswith(f"{stack.blob_url}/")
    assert [item["name"] for item in read["model_versions"]] == ["minimal"]


def test_bad_input_through_the_sdk_raises_weirs_message_and_changes_nothing(stack, workspace):
    """A name with spaces, traffic summing to 90, an unknown model...: the SDK raises its usual
    exception carrying Weir's ARM error message, and the server holds what it held."""
    runtime = stack.register_runtime(workspace)
    endpoint_path = f"{workspace}/onlineEndpoints/careful"
    response = stack.call(
        "PUT", endpoint_path, {"location": "local", "properties": {"authMode": "Key"}}
    )
    stack.wait_for_status(response.headers["Azure-AsyncOperation"])
    deployment = {"location": "local", "properties": {"endpointComputeType": "Managed", **runtime}}
    response = stack.call("PUT", f"{endpoint_path}/deployments/blue", deployment)
    assert response.status_code == 201, response.text
    stack.wait_for_status(response.headers["Azure-AsyncOperation"], timeout=300)
    before = {
        "endpoints": stack.call("GET", f"{workspace}/onlineEndpoints").json(),
        "blue": stack.call("GET", f"{endpoint_path}/deployments/blue").json(),
        "models": stack.call("GET", f"{workspace}/models").json(),
    }
    done = run_client(stack, "sdk_v2_bad_input.py", WEIR_ENDPOINT="careful", WEIR_DEPLOYMENT="blue")
    assert done.returncode == 0, done.stderr[-3000:]
    cases = {line["case"]: line for line in map(json.loads, done.stdout.splitlines())}
    # The SDK checks an endpoint name itself before it calls; Weir refuses it too (REST tests).
    assert cases["name_with_spaces"]["raised"] == "MlException"
    assert "name for an endpoint" in cases["name_with_spaces"]["message"]
    expected = {
        "traffic_summing_to_90": (
            "HttpResponseError",
            "traffic values must sum to 0 or 100, not 90",
        ),
        "unknown_model": (
            "HttpResponseError",
            "model 'no-such-model' does not exist in this workspace",
        ),
        "unknown_deployment_in_traffic": (
            "HttpResponseError",
            "deployment 'no-such-deployment' does not exist on this endpoint",
        ),
        "deployment_on_a_missing_endpoint": (
            "ResourceNotFoundError",
            "Online endpoint 'no-such-endpoint' was not found.",
        ),
    }
    for case, (raised, message) in expected.items():
        assert cases[case]["raised"] == raised, cases[case]
        assert f"Message: {message}" in cases[case]["message"], cases[case]
    after = {
        "endpoints": stack.call("GET", f"{workspace}/onlineEndpoints").json(),
        "blue": stack.call("GET", f"{endpoint_path}/deployments/blue").json(),
        "models": stack.call("GET", f"{workspace}/models").json(),
    }
    assert after == before
