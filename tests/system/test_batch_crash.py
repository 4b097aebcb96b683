"""A batch job survives its worker being killed: the mini-batches committed before the kill
are not scored again, the rest are, and the output holds every input row once, in order."""

from __future__ import annotations

import signal
import time

import pytest

pytestmark = pytest.mark.system

# One line per input line, slowly enough that the kill lands mid-job.
SCRIPT = b"""import os
import time

def init():
    pass

def run(mini_batch):
    rows = []
    for path in mini_batch:
        time.sleep(0.4)
        with open(path) as f:
            rows += [os.path.basename(path) + " " + line.strip() for line in f]
    return rows
"""
FILES = {f"part-{i:02d}.txt": f"{i}a\n{i}b\n".encode() for i in range(16)}
CLUSTER = {
    "location": "local",
    "properties": {
        "computeType": "AmlCompute",
        "properties": {"scaleSettings": {"maxNodeCount": 2}},
    },
}


def ledger(stack, job: str) -> dict[int, tuple[str, str | None]]:
    rows = stack.sql(
        "SELECT m.index, m.status, m.ended_at::text FROM batch_minibatch m"
        " JOIN batch_batchjob j ON m.job_id = j.id WHERE j.name = %s",
        job,
    )
    return {index: (status, ended) for index, status, ended in rows}


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_job_resumes_after_its_worker_is_killed(stack, workspace):
    runtime = stack.register_runtime(workspace)
    code_uri = stack.upload(workspace, {"slow.py": SCRIPT})
    code = {"properties": {"codeUri": code_uri}}
    assert stack.call("PUT", f"{workspace}/codes/slow/versions/1", code).status_code == 201
    model_uri = stack.upload(workspace, {"m.txt": b"m"}, "models")
    model = {"properties": {"modelUri": model_uri}}
    assert stack.call("PUT", f"{workspace}/models/m/versions/1", model).status_code == 201
    assert stack.call("PUT", f"{workspace}/computes/cluster", CLUSTER).status_code == 201
    endpoint = f"{workspace}/batchEndpoints/crash"
    body = {"location": "local", "properties": {"authMode": "AADToken"}}
    assert stack.call("PUT", endpoint, body).status_code == 201
    deployment = {
        "location": "local",
        "properties": {
            "model": {"referenceType": "Id", "assetId": "azureml:m:1"},
            "environmentId": runtime["environmentId"],
            "codeConfiguration": {"codeId": "azureml:slow:1", "scoringScript": "slow.py"},
            "compute": "azureml:cluster",
            "resources": {"instanceCount": 2},
            "miniBatchSize": 2,
        },
    }
    response = stack.call("PUT", f"{endpoint}/deployments/slow", deployment)
    assert response.status_code == 201, response.text
    data = stack.upload(workspace, FILES)
    scoring_uri = stack.call("GET", endpoint).json()["properties"]["scoringUri"]
    invocation = {"properties": {"inputData": {"in": {"jobInputType": "UriFolder", "uri": data}}}}
    response = stack.call("POST", scoring_uri, invocation)
    assert response.status_code == 201, response.text
    job = response.json()["name"]

    # Kill the workers (and with them the scoring processes) once some mini-batches are in.
    def some_committed():
        rows = ledger(stack, job)
        done = {i: row for i, row in rows.items() if row[0] == "Succeeded"}
        return done if len(done) >= 3 else None

    before = wait_for(some_committed, 300, "three committed mini-batches")
    stack.stop_worker(signal.SIGKILL)
    assert len(before) < len(FILES) // 2, "the job finished before the kill"
    stack.start_worker()

    def finished():
        (status,) = stack.sql("SELECT status FROM batch_batchjob WHERE name = %s", job)[0]
        return status if status in ("Completed", "Failed", "Canceled") else None

    assert wait_for(finished, 300, "the job to finish") == "Completed"
    after = ledger(stack, job)
    assert len(after) == len(FILES) // 2 and all(row[0] == "Succeeded" for row in after.values())
    # What was committed before the kill was not scored again.
    assert {i: after[i] for i in before} == before
    (attempts,) = stack.sql("SELECT attempts FROM batch_batchjob WHERE name = %s", job)[0]
    assert attempts >= 2

    listing = stack.call("GET", f"/history/v1.0{workspace}/runs/{job}/details").json()
    assert listing["status"] == "Completed"
    predictions = read_output(stack, workspace, job, "predictions.csv").splitlines()
    expected = [f"{name} {i}{c}" for i, name in enumerate(sorted(FILES)) for c in "ab"]
    assert predictions == expected


def read_output(stack, workspace: str, job: str, name: str) -> str:
    """A blob of the job's output, read as Azure's SDK reads it: the datastore's SAS."""
    store = stack.call("GET", f"{workspace}/datastores/workspaceblobstore").json()["properties"]
    secrets = stack.call("POST", f"{workspace}/datastores/workspaceblobstore/listSecrets").json()
    container = stack.container_client(
        f"{stack.blob_url}/{store['accountName']}/{store['containerName']}?{secrets['sasToken']}"
    )
    return container.download_blob(f"azureml/{job}/score/{name}").readall().decode()
