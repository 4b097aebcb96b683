"""Batch endpoints and deployments (ARM resources, written synchronously), AmlCompute
clusters, invoking an endpoint, and the job it starts, run by the real task and scoring
processes in this process."""

from __future__ import annotations

import pytest

from controlplane.blobstore import storage
from controlplane.core.models import Workspace
from tests.conftest import WS, assert_arm_error, url

CLUSTER = {
    "location": "local",
    "properties": {
        "computeType": "AmlCompute",
        "properties": {
            "vmSize": "STANDARD_DS3_V2",
            "vmPriority": "Dedicated",
            "scaleSettings": {"maxNodeCount": 2, "minNodeCount": 0},
        },
    },
}
# Each line of every file scored becomes a line of the predictions: "<file>:<line>".
BATCH_SCORE = b"""import os

def init():
    global prefix
    prefix = os.environ.get("PREFIX", "")

def run(mini_batch):
    rows = []
    for path in mini_batch:
        name = os.path.basename(path)
        if name.startswith("bad"):
            raise ValueError("cannot score " + name)
        if os.environ.get("SCORED_LOG"):
            with open(os.environ["SCORED_LOG"], "a") as log:
                log.write(name + "\\n")
        with open(path) as f:
            rows += [prefix + name + ":" + line.strip() for line in f if line.strip()]
    return rows
"""
ENDPOINT = {"location": "local", "properties": {"authMode": "aadToken", "description": "d"}}


def deployment_body(**settings):
    return {
        "location": "local",
        "properties": {
            "model": {"referenceType": "Id", "assetId": "azureml:sklearn:1"},
            "codeConfiguration": {"codeId": "azureml:batch-score:1", "scoringScript": "score.py"},
            "environmentId": "azureml:test-env:1",
            "compute": "azureml:batch-cluster",
            "environmentVariables": {"PREFIX": "p-"},
            "resources": {"instanceCount": 1},
            "miniBatchSize": 2,
            "maxConcurrencyPerInstance": 2,
            "outputAction": "AppendRow",
            "retrySettings": {"maxRetries": 1, "timeout": "PT30S"},
            "loggingLevel": "info",
            **settings,
        },
    }


@pytest.fixture
def batch(client, workspace, model_version):
    account = storage.account_for(Workspace.objects.get())
    storage.write_blob(account, account.default_container, "bc/score.py", [BATCH_SCORE])
    for index in range(5):
        lines = f"a{index}\nb{index}\n".encode()
        storage.write_blob(account, account.default_container, f"in/f{index}.txt", [lines])
    code = {"properties": {"codeUri": "azureml://datastores/workspaceblobstore/paths/bc/"}}
    assert client.put(url("/codes/batch-score/versions/1"), code, format="json").status_code == 201
    assert client.put(url("/computes/batch-cluster"), CLUSTER, format="json").status_code == 201
    response = client.put(url("/batchEndpoints/bep"), ENDPOINT, format="json")
    assert response.status_code == 201, response.content
    response = client.put(
        url("/batchEndpoints/bep/deployments/dep-one"), deployment_body(), format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def invoke(client, headers=None, **properties):
    endpoint = client.get(url("/batchEndpoints/bep")).json()
    body = {
        "properties": {
            "inputData": {
                "UriFolder": {
                    "jobInputType": "UriFolder",
                    "uri": "azureml://datastores/workspaceblobstore/paths/in/",
                }
            },
            **properties,
        }
    }
    return client.post(endpoint["properties"]["scoringUri"], body, format="json", **(headers or {}))


def run_job(name: str) -> dict:
    import workers.tasks  # noqa: F401 - registers the tasks
    from controlplane.batch.models import BatchJob
    from workers.celery_app import app

    job = BatchJob.objects.get(name=name)
    app.tasks["weir.run_batch_job"](job_id=str(job.pk))
    job.refresh_from_db()
    return job


def read_blob(name: str) -> str:
    from controlplane.blobstore.backends import blob_backend
    from controlplane.blobstore.models import Blob

    blob = Blob.objects.get(name=name)
    with blob_backend().open(blob.digest) as source:
        return source.read().decode()


def test_aml_compute_is_accepted_and_answered_as_sent(client, workspace):
    body = client.put(url("/computes/batch-cluster"), CLUSTER, format="json").json()
    properties = body["properties"]
    assert properties["computeType"] == "AmlCompute"
    assert properties["provisioningState"] == "Succeeded"
    assert properties["properties"]["scaleSettings"]["maxNodeCount"] == 2
    bad = {**CLUSTER, "properties": {**CLUSTER["properties"], "properties": {"vmSize": "x"}}}
    assert_arm_error(
        client.put(url("/computes/other"), bad, format="json"),
        400,
        "ValidationError",
        "properties.properties.scaleSettings",
    )


def test_endpoint_and_deployment_round_trip_with_the_services_defaults(client, batch):
    endpoint = client.get(url("/batchEndpoints/bep")).json()
    assert endpoint["properties"]["authMode"] == "AADToken"
    assert endpoint["properties"]["provisioningState"] == "Succeeded"
    assert endpoint["properties"]["scoringUri"].endswith(f"/batch{WS}/batchEndpoints/bep/jobs")
    deployment = client.get(url("/batchEndpoints/bep/deployments/dep-one")).json()["properties"]
    assert deployment["miniBatchSize"] == 2
    assert deployment["loggingLevel"] == "Info"
    assert deployment["outputFileName"] == "predictions.csv"
    assert deployment["errorThreshold"] == -1
    assert deployment["retrySettings"] == {"maxRetries": 1, "timeout": "PT30S"}
    assert deployment["resources"]["instanceCount"] == 1
    endpoint["properties"]["defaults"] = {"deploymentName": "DEP-ONE"}
    response = client.put(url("/batchEndpoints/bep"), endpoint, format="json")
    assert response.status_code == 200
    operation = client.get(response["Azure-AsyncOperation"]).json()
    assert operation["status"] == "Succeeded"
    again = client.put(url("/batchEndpoints/bep"), endpoint, format="json")
    assert again.status_code == 200 and "Azure-AsyncOperation" not in again  # nothing to do
    assert client.get(url("/batchEndpoints/bep")).json()["properties"]["defaults"] == {
        "deploymentName": "DEP-ONE"
    }


def test_bad_deployments_are_refused_naming_the_field(client, batch):
    cases = [
        ({"compute": "azureml:nope"}, "properties.compute"),
        ({"resources": {"instanceCount": 3}}, "properties.resources.instanceCount"),
        ({"miniBatchSize": 0}, "properties.miniBatchSize"),
        ({"outputAction": "Sometimes"}, "properties.outputAction"),
        ({"outputFileName": "a/b.csv"}, "properties.outputFileName"),
        ({"model": {"referenceType": "Id", "assetId": "azureml:missing:1"}}, None),
    ]
    for settings, target in cases:
        response = client.put(
            url("/batchEndpoints/bep/deployments/dep-two"),
            deployment_body(**settings),
            format="json",
        )
        error = assert_arm_error(response, 400, "ValidationError")
        if target:
            assert error["target"] == target, (settings, error)
    assert [
        d["name"] for d in client.get(url("/batchEndpoints/bep/deployments")).json()["value"]
    ] == ["dep-one"]
    wrong = {
        **ENDPOINT,
        "properties": {**ENDPOINT["properties"], "defaults": {"deploymentName": "x"}},
    }
    assert_arm_error(
        client.put(url("/batchEndpoints/bep"), wrong, format="json"),
        400,
        "ValidationError",
        "properties.defaults.deploymentName",
    )


def test_an_invocation_runs_a_job_whose_predictions_are_in_input_order(client, batch):
    response = invoke(client, headers={"HTTP_REPEATABILITY_REQUEST_ID": "r-1"})
    assert response.status_code == 201, response.content
    job = response.json()
    assert job["properties"]["status"] == "Queued"
    again = invoke(client, headers={"HTTP_REPEATABILITY_REQUEST_ID": "r-1"})
    assert again.status_code == 200 and again.json()["name"] == job["name"]

    done = run_job(job["name"])
    assert done.status == "Completed", done.error
    assert (done.mini_batches, done.mini_batches_done) == (3, 3)
    lines = read_blob(f"azureml/{job['name']}/score/predictions.csv").splitlines()
    assert lines == [f"p-f{i}.txt:{c}{i}" for i in range(5) for c in "ab"]

    arm = client.get(url(f"/jobs/{job['name']}")).json()
    assert arm["properties"]["status"] == "Completed"
    assert arm["properties"]["tags"]["azureml.batchrun"] == "true"
    details = client.get(f"/history/v1.0{WS}/runs/{job['name']}/details").json()
    logs = details["logFiles"]
    assert "sig=" in logs["user_logs/std_log.txt"]
    assert "user/stdout/process001.stdout.txt" in logs
    assert "user/stderr/process002.stderr.txt" in logs


def test_a_failing_mini_batch_is_retried_then_counted_against_the_threshold(client, batch):
    account = storage.account_for(Workspace.objects.get())
    storage.write_blob(account, account.default_container, "in/bad.txt", [b"x\n"])
    job = invoke(client, errorThreshold=0).json()
    done = run_job(job["name"])
    assert done.status == "Failed"
    assert done.error["code"] == "ErrorThresholdExceeded"
    attempts = done.ledger.get(files__contains=["bad.txt"]).attempts
    assert attempts == 2  # maxRetries 1: two attempts

    tolerant = invoke(client).json()  # errorThreshold -1: failures are counted, not fatal
    done = run_job(tolerant["name"])
    assert done.status == "Completed"
    assert done.items_failed == 2  # bad.txt and the file in its mini-batch
    rows = read_blob(f"azureml/{tolerant['name']}/score/failed_items.csv").splitlines()
    assert rows[0] == "file,mini_batch,attempts,error"
    assert rows[1:] == [
        "bad.txt,0,2,ValueError: cannot score bad.txt",
        "f0.txt,0,2,ValueError: cannot score bad.txt",
    ]
    predictions = read_blob(f"azureml/{tolerant['name']}/score/predictions.csv").splitlines()
    assert predictions == [f"p-f{i}.txt:{c}{i}" for i in range(1, 5) for c in "ab"]


def test_bad_invocations_are_refused_and_start_nothing(client, batch):
    from controlplane.batch.models import BatchJob

    missing = {
        "inputData": {
            "x": {
                "jobInputType": "UriFolder",
                "uri": "azureml://datastores/workspaceblobstore/paths/none/",
            }
        }
    }
    assert_arm_error(
        invoke(client, **missing), 400, "ValidationError", "properties.inputData.x.uri"
    )
    asset = {"inputData": {"x": {"jobInputType": "UriFolder", "uri": "azureml:heart@latest"}}}
    assert_arm_error(invoke(client, **asset), 400, "ValidationError", "properties.inputData.x.uri")
    assert_arm_error(
        invoke(client, miniBatchSize="many"), 400, "ValidationError", "properties.miniBatchSize"
    )
    assert_arm_error(
        invoke(client, headers={"HTTP_AZUREML_MODEL_DEPLOYMENT": "nope"}), 404, "ResourceNotFound"
    )
    assert_arm_error(
        invoke(client, headers={"HTTP_REPEATABILITY_REQUEST_ID": "r" * 256}),
        400,
        "ValidationError",
        "repeatability_request-id",
    )
    assert_arm_error(
        invoke(client, errorThreshold=-2), 400, "ValidationError", "properties.errorThreshold"
    )
    assert not BatchJob.objects.exists()


def test_cancel_a_queued_job_and_jobs_outlive_their_endpoint(client, batch):
    job = invoke(client).json()
    response = client.post(url(f"/jobs/{job['name']}/cancel"))
    assert response.status_code == 202
    assert client.get(url(f"/jobs/{job['name']}")).json()["properties"]["status"] == "Canceled"
    response = client.delete(url("/batchEndpoints/bep"))
    assert response.status_code == 202
    assert client.get(response["Location"]).status_code == 204
    assert client.get(url("/batchEndpoints/bep")).status_code == 404
    assert client.get(url(f"/jobs/{job['name']}")).json()["properties"]["status"] == "Canceled"


def test_a_cluster_a_batch_deployment_runs_on_cannot_be_deleted(client, batch):
    error = assert_arm_error(client.delete(url("/computes/batch-cluster")), 409, "Conflict")
    assert "batch deployment 'bep/dep-one'" in error["message"]
    assert client.delete(url("/batchEndpoints/bep/deployments/dep-one")).status_code == 202
    assert client.delete(url("/computes/batch-cluster")).status_code == 200


def test_incremental_scoring_scores_only_what_is_new(client, batch, tmp_path):
    scored = tmp_path / "scored.txt"
    body = deployment_body(
        properties={"weir.incrementalScoring": "true"},
        environmentVariables={"PREFIX": "p-", "SCORED_LOG": str(scored)},
    )
    response = client.put(url("/batchEndpoints/bep/deployments/dep-one"), body, format="json")
    assert response.status_code == 200, response.content
    first = invoke(client).json()
    assert run_job(first["name"]).status == "Completed"
    assert sorted(scored.read_text().split()) == [f"f{i}.txt" for i in range(5)]

    # The folder grows by files that sort after the old ones: only the last, partial
    # mini-batch (f4) and the new files are scored; the rest reuse the first job's results.
    account = storage.account_for(Workspace.objects.get())
    for index in (5, 6):
        lines = f"a{index}\nb{index}\n".encode()
        storage.write_blob(account, account.default_container, f"in/f{index}.txt", [lines])
    scored.write_text("")
    second = invoke(client).json()
    done = run_job(second["name"])
    assert done.status == "Completed"
    assert sorted(scored.read_text().split()) == ["f4.txt", "f5.txt", "f6.txt"]
    reused = {b.index: b.reused_from for b in done.ledger.all()}
    assert reused == {0: first["name"], 1: first["name"], 2: None, 3: None}
    lines = read_blob(f"azureml/{second['name']}/score/predictions.csv").splitlines()
    assert lines == [f"p-f{i}.txt:{c}{i}" for i in range(7) for c in "ab"]

    # Without the opt-in, everything is scored again.
    scored.write_text("")
    plain = invoke(client, properties={"weir.incrementalScoring": "false"}).json()
    assert run_job(plain["name"]).status == "Completed"
    assert len(scored.read_text().split()) == 7


def test_an_output_file_already_there_fails_the_job_and_is_left_alone(client, batch):
    account = storage.account_for(Workspace.objects.get())
    storage.write_blob(account, account.default_container, "out/taken.csv", [b"keep me\n"])
    output = {
        "score": {
            "jobOutputType": "UriFile",
            "uri": "azureml://datastores/workspaceblobstore/paths/out/taken.csv",
        }
    }
    job = invoke(client, outputData=output).json()
    done = run_job(job["name"])
    assert done.status == "Failed"
    assert done.error["code"] == "OutputExists"
    assert "out/taken.csv" in done.error["message"]
    assert read_blob("out/taken.csv") == "keep me\n"

    elsewhere = {
        "score": {**output["score"], "uri": output["score"]["uri"].replace("taken", "new")}
    }
    job = invoke(client, outputData=elsewhere).json()
    assert run_job(job["name"]).status == "Completed"
    assert read_blob("out/new.csv").splitlines()[0] == "p-f0.txt:a0"


def test_a_run_whose_job_another_run_claimed_loses_it(client, batch):
    from workers.tasks.batch import Heartbeat, claim

    job = invoke(client).json()
    from controlplane.batch.models import BatchJob

    pk = BatchJob.objects.get(name=job["name"]).pk
    first = claim(pk)
    assert Heartbeat(first).beat()
    second = claim(pk)  # the reconciler re-drove it: a new run owns it now
    assert second.runner != first.runner
    assert not Heartbeat(first).beat()
    assert Heartbeat(second).beat()


def test_a_data_asset_is_an_input(client, batch):
    folder = {
        "properties": {
            "dataType": "uri_folder",
            "dataUri": "azureml://datastores/workspaceblobstore/paths/in/",
        }
    }
    version = client.put(url("/data/letters/versions/1"), folder, format="json")
    assert version.status_code == 201, version.content
    inputs = {"inputData": {"heart": {"jobInputType": "UriFolder", "uri": version.json()["id"]}}}
    job = invoke(client, **inputs).json()
    done = run_job(job["name"])
    assert done.status == "Completed", done.error
    lines = read_blob(f"azureml/{job['name']}/score/predictions.csv").splitlines()
    assert lines == [f"p-f{i}.txt:{c}{i}" for i in range(5) for c in "ab"]

    latest = {
        "inputData": {"heart": {"jobInputType": "UriFolder", "uri": "azureml:letters@latest"}}
    }
    assert invoke(client, **latest).status_code == 201
    table = {
        "properties": {
            "dataType": "mltable",
            "dataUri": "azureml://datastores/workspaceblobstore/paths/in/",
        }
    }
    assert client.put(url("/data/table/versions/1"), table, format="json").status_code == 201
    mltable = {"inputData": {"t": {"jobInputType": "UriFolder", "uri": "azureml:table:1"}}}
    assert_arm_error(
        invoke(client, **mltable), 400, "ValidationError", "properties.inputData.t.uri"
    )


def test_a_cancel_asked_for_before_a_failure_wins(client, batch, monkeypatch):
    """A job canceled while its environment builds ends Canceled, even if the build then
    fails (the user asked to stop it)."""
    from controlplane.batch import states
    from controlplane.batch.models import BatchJob
    from workers.errors import PermanentError
    from workers.tasks import batch as runtime

    def build_fails_after_a_cancel(job, progress):
        states.transition(job.pk, "CancelRequested")
        raise PermanentError("EnvironmentBuildFailed", "no such package: nothing")

    monkeypatch.setattr(runtime, "run_mini_batches", build_fails_after_a_cancel)
    job = invoke(client).json()
    done = run_job(job["name"])
    assert (done.status, done.error) == ("Canceled", None)
    log = read_blob(f"azureml/{job['name']}/logs/user_logs/std_log.txt")
    assert "failed: EnvironmentBuildFailed: no such package: nothing" in log
    assert BatchJob.objects.get(name=job["name"]).ended_at is not None


def test_an_init_that_never_returns_fails_the_job(client, batch, settings):
    settings.WEIR_BATCH_INIT_TIMEOUT = 2
    account = storage.account_for(Workspace.objects.get())
    hang = (
        b"import time\n\ndef init():\n    time.sleep(600)\n\ndef run(mini_batch):\n    return []\n"
    )
    storage.write_blob(account, account.default_container, "hang/score.py", [hang])
    code = {"properties": {"codeUri": "azureml://datastores/workspaceblobstore/paths/hang/"}}
    assert client.put(url("/codes/hang/versions/1"), code, format="json").status_code == 201
    body = deployment_body(
        codeConfiguration={"codeId": "azureml:hang:1", "scoringScript": "score.py"}
    )
    response = client.put(url("/batchEndpoints/bep/deployments/hangs"), body, format="json")
    assert response.status_code == 201, response.content
    job = invoke(client, headers={"HTTP_AZUREML_MODEL_DEPLOYMENT": "hangs"}).json()
    done = run_job(job["name"])
    assert done.status == "Failed"
    assert done.error["code"] == "UserInitFailed"
    assert "did not return within 2 s" in done.error["message"]


def test_an_output_given_as_a_blob_url_is_kept_as_a_datastore_path(client, batch):
    account = storage.account_for(Workspace.objects.get())
    blob_url = storage.blob_url(account, account.default_container, "results/run-1/")
    output = {"score": {"jobOutputType": "UriFolder", "uri": blob_url}}
    job = invoke(client, outputData=output).json()
    assert job["properties"]["outputData"]["score"]["uri"] == (
        "azureml://datastores/workspaceblobstore/paths/results/run-1/"
    )
    resolved = client.post(
        f"/data/v1.0{WS}/dataversion/batchGetResolvedUris",
        {
            "values": [
                f"azureml://locations/local/workspaces/x/data/azureml_{job['name']}_output_data_score/versions/1"
            ]
        },
        format="json",
    ).json()["values"]
    (entry,) = resolved.values()
    assert entry["uri"].endswith("/datastores/workspaceblobstore/paths/results/run-1/")
    other = storage.blob_url(account, "another-container", "x/")
    bad = {"score": {"jobOutputType": "UriFolder", "uri": other}}
    assert_arm_error(
        invoke(client, outputData=bad), 400, "ValidationError", "properties.outputData.score.uri"
    )
