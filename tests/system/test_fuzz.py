"""Schemathesis against the real server, from openapi.yaml: generated requests for every
operation (examples, coverage, fuzzing and stateful phases), bounded in time. Any 5xx, any
response that does not match the spec, fails the build.

Path parameters are seeded with names that exist (one workspace with an endpoint, a
deployment, and a model, environment and code all named ``fuzz``), so the generated
requests reach the resources and not only 404s. The longer run before a release is
``python bench/fuzz.py``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.system.conftest import ROOT

pytestmark = pytest.mark.system

CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"
# Seconds the fuzzer may spend; the README's test command stays well under its budget.
BUDGET = int(os.environ.get("WEIR_FUZZ_SECONDS", "150"))
EXAMPLES = os.environ.get("WEIR_FUZZ_EXAMPLES", "15")  # per operation and phase


def seed(stack, workspace) -> dict:
    runtime = stack.register_runtime(workspace)
    for collection, body in (
        (
            "models",
            {"properties": {"modelUri": stack.upload(workspace, {"m.txt": b"m"}, "models")}},
        ),
        ("environments", {"properties": {"image": "python:3.11-slim"}}),
        ("codes", {"properties": {"codeUri": stack.upload(workspace, {"score.py": b"x"})}}),
    ):
        response = stack.call("PUT", f"{workspace}/{collection}/fuzz/versions/1", body)
        assert response.status_code == 201, response.text
    endpoint = f"{workspace}/onlineEndpoints/fuzz-endpoint"
    response = stack.call("PUT", endpoint, {"location": "local", "properties": {"authMode": "Key"}})
    status_url = response.headers["Azure-AsyncOperation"]
    stack.wait_for_status(status_url)
    deployment = {"location": "local", "properties": {"endpointComputeType": "Managed", **runtime}}
    response = stack.call("PUT", f"{endpoint}/deployments/blue", deployment)
    assert response.status_code == 201, response.text
    # The batch side under the same names: a cluster, an endpoint, a deployment and a job.
    cluster = {
        "location": "local",
        "properties": {
            "computeType": "AmlCompute",
            "properties": {"scaleSettings": {"maxNodeCount": 1}},
        },
    }
    response = stack.call("PUT", f"{workspace}/computes/fuzz-cluster", cluster)
    assert response.status_code == 201, response.text
    batch = f"{workspace}/batchEndpoints/fuzz-endpoint"
    response = stack.call(
        "PUT", batch, {"location": "local", "properties": {"authMode": "AADToken"}}
    )
    assert response.status_code == 201, response.text
    model = {"referenceType": "Id", "assetId": f"{workspace}/models/fuzz/versions/1"}
    properties = {**runtime, "model": model, "compute": "azureml:fuzz-cluster"}
    response = stack.call(
        "PUT", f"{batch}/deployments/blue", {"location": "local", "properties": properties}
    )
    assert response.status_code == 201, response.text
    data = stack.upload(workspace, {"a.txt": b"a"})
    scoring_uri = stack.call("GET", batch).json()["properties"]["scoringUri"]
    invocation = {"properties": {"inputData": {"in": {"jobInputType": "UriFolder", "uri": data}}}}
    job = stack.call("POST", scoring_uri, invocation)
    assert job.status_code == 201, job.text
    return {
        "path.subscriptionId": stack.subscription,
        "path.resourceGroupName": "rg1",
        "path.workspaceName": stack.workspace_name,
        "path.endpointName": "fuzz-endpoint",
        "path.deploymentName": "blue",
        "path.name": "fuzz",
        "path.version": "1",
        "path.location": "local",
        "query.api-version": "2024-04-01",
        # The endpoint's create operation, for the operation status and result routes.
        "path.operationId": status_url.split("?")[0].rsplit("/", 1)[-1],
        "path.jobName": job.json()["name"],
        "path.computeName": "fuzz-cluster",
    }


def test_the_fuzzer_finds_no_server_error_and_no_spec_violation(stack, workspace, tmp_path):
    parameters = seed(stack, workspace)
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n"
        + "".join(f'"{key}" = {json.dumps(value)}\n' for key, value in parameters.items())
        # Datastores have names of their own.
        + '\n[[operations]]\ninclude-path-regex = "/datastores/"\n'
        + 'parameters = { "path.name" = "workspaceblobstore" }\n'
    )
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "--config-file", str(config), "run"]
        + [str(ROOT / "openapi.yaml"), "--url", stack.base_url]
        + ["--header", f"Authorization: Bearer {stack.token}", "--tls-verify", stack.ca_bundle]
        + ["--checks", CHECKS, "--phases", "examples,coverage,fuzzing,stateful"]
        + ["--max-examples", EXAMPLES, "--max-time", str(BUDGET), "--seed", "1", "--workers", "1"]
        + ["--report", "json", "--report-json-path", str(report), "--no-color"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=BUDGET + 300,
    )
    print(done.stdout[-6000:])
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-3000:]
    # Every operation in the spec was exercised, none skipped.
    selected = re.search(r"Selected: (\d+)/(\d+)", done.stdout)
    tested = re.search(r"Tested: (\d+)", done.stdout)
    assert selected and tested, done.stdout[-3000:]
    assert selected[1] == selected[2] == tested[1], done.stdout[-3000:]
