"""Azure's batch endpoint samples, walked with Azure's ML SDK v2 (azure-ai-ml, ``MLClient``) as
an Azure user walks them, pointed at Weir as at any other Azure cloud.

Sample A (examples/batch/deploy-models/custom-outputs-parquet): a custom model and Azure's
unchanged scoring script writing one parquet file per input file; compute, model, endpoint and
deployment from Azure's YAML files, default deployment, invoke on a local folder, job status,
stream, download, job lists; then an unknown deployment name, and a slow job canceled.
Sample B (examples/batch/deploy-models/heart-classifier-mlflow): an MLflow model deployed with
no code or environment (deployment-simple), invoked, streamed and downloaded; then Azure's
published custom script for it (deployment-custom), which fails, with ``error_threshold: 0``.
Last, deletes: the jobs outlive their deployments and endpoints.

Runs in the client's own virtualenv (tests/clients/azure-ai-ml.txt), nothing of Weir
imported. Prints one JSON line per step, ``{"step", "ok", "detail"}``, and stops at the
first failure with the exception and its traceback in ``detail``. The client cannot read
parquet (no pandas), so the download steps list each file they got, with its path and
sha256, for the caller to compare.

Configuration (environment): ARM_CLOUD_METADATA_URL, WEIR_TOKEN, WEIR_SUBSCRIPTION,
WEIR_GROUP, WEIR_WORKSPACE, REQUESTS_CA_BUNDLE (as tests/clients/weir_sdk.py reads them),
WEIR_EXAMPLES (examples/batch), WEIR_BATCH_MODEL (a folder "model" holding model.pkl),
WEIR_MLFLOW_MODEL (a folder "model" saved by MLflow), WEIR_DOWNLOADS (an empty folder the
jobs' outputs are downloaded into), and AZUREML_RUN_POLLING_INTERVAL_MIN/MAX (read by the SDK
when it is imported; 1 makes ``jobs.stream`` poll every second instead of every 2 to 60 s).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import time
from pathlib import Path

from azure.ai.ml import Input, MLClient, load_batch_endpoint
from azure.ai.ml.constants import AssetTypes, BatchDeploymentOutputAction
from azure.ai.ml.entities import (
    AmlCompute,
    BatchRetrySettings,
    CodeConfiguration,
    Data,
    Model,
    ModelBatchDeployment,
    ModelBatchDeploymentSettings,
    ResourceConfiguration,
)

# load_batch_deployment reads the legacy schema, which refuses the samples' `type: model` and
# `settings:`; such files load with this one (not exported by azure.ai.ml 1.35.2), as the SDK's
# own tests load them.
from azure.ai.ml.entities._load_functions import load_model_batch_deployment
from azure.ai.ml.exceptions import JobException, ValidationException
from azure.core.exceptions import ResourceNotFoundError
from weir_sdk import step, walk

EXAMPLES = Path(os.environ["WEIR_EXAMPLES"])
SAMPLE_A = EXAMPLES / "deploy-models" / "custom-outputs-parquet"
SAMPLE_B = EXAMPLES / "deploy-models" / "heart-classifier-mlflow"
DATA = SAMPLE_B / "data"
CLIENTS = Path(__file__).resolve().parent
CONDA = CLIENTS / "batch_env" / "conda.yaml"
SLOW = CLIENTS / "batch_slow"
MODEL = Path(os.environ["WEIR_BATCH_MODEL"])
MLFLOW_MODEL = Path(os.environ["WEIR_MLFLOW_MODEL"])
DOWNLOADS = Path(os.environ["WEIR_DOWNLOADS"])

COMPUTE = "batch-cluster"  # what every sample deployment.yml names
ENDPOINT = "heart-parquet"  # Sample A's endpoint.yml, renamed
MLFLOW_ENDPOINT = "heart-mlflow"  # Sample B's endpoint.yml, renamed
DEPLOYMENT = "classifier-xgboost-custom"  # Sample A's deployment.yml
MLFLOW_DEPLOYMENT = "classifier-xgboost-mlflow"  # deployment-simple/deployment.yml
FAILING_DEPLOYMENT = "classifier-xgboost-custom"  # deployment-custom/deployment.yml
SLOW_DEPLOYMENT = "slow"
OUTPUTS = [f"heart-unlabeled-{i}.parquet" for i in range(4)]

# Azure's job statuses (SDK: operations/_run_history_constants.py).
INVOKED = {"NotStarted", "Queued", "Preparing", "Running"}
TERMINAL = {"Completed", "Failed", "Canceled", "NotResponding", "Paused"}
# The first job waits for its environment (pandas, scikit-learn, pyarrow) to be built.
JOB_TIMEOUT = 900


def data() -> Input:
    """The samples' four CSV files, a local folder the SDK uploads."""
    return Input(type=AssetTypes.URI_FOLDER, path=str(DATA))


def settings_of(deployment) -> dict:
    """A batch deployment's settings as ``ml.batch_deployments.get`` reads them back."""
    retry = deployment.retry_settings
    return {
        "mini_batch_size": deployment.mini_batch_size,
        "max_concurrency_per_instance": deployment.max_concurrency_per_instance,
        "output_action": deployment.output_action,
        "output_file_name": deployment.output_file_name,
        "retry_settings": retry and {"max_retries": retry.max_retries, "timeout": retry.timeout},
        "error_threshold": deployment.error_threshold,
        # Sent lower-case; the API's enum spells it Info, Warning, Debug.
        "logging_level": (deployment.logging_level or "").lower(),
        "instance_count": deployment.instance_count,
        # Sent as the compute's ARM id; the name is what must come back.
        "compute": (deployment.compute or "").removeprefix("azureml:").rsplit("/", 1)[-1],
    }


def sample_settings(output_action: str, output_file_name: str | None) -> dict:
    """The settings both samples' deployment.yml files give (summary_only reads back with no
    output file name: the SDK drops it)."""
    return {
        "mini_batch_size": 2,
        "max_concurrency_per_instance": 2,
        "output_action": output_action,
        "output_file_name": output_file_name,
        "retry_settings": {"max_retries": 3, "timeout": 300},
        "error_threshold": -1,
        "logging_level": "info",
        "instance_count": 2,
        "compute": COMPUTE,
    }


def listing(folder: Path) -> dict:
    """Every file under ``folder``: relative path -> absolute path, size and sha256."""
    assert folder.is_dir(), f"{folder} was not downloaded"
    return {
        path.relative_to(folder).as_posix(): {
            "path": str(path),
            "bytes": path.stat().st_size,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        }
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def run_steps(ml: MLClient) -> None:  # noqa: C901 - one walk, step after step
    jobs: dict[str, str] = {}  # which job -> its name
    seen: dict[str, str] = {}  # job name -> the terminal status it reached

    def wait_for(name: str, timeout: float = JOB_TIMEOUT) -> str:
        """Poll ``ml.jobs.get`` every second until the job's status is terminal."""
        deadline = time.monotonic() + timeout
        while True:
            status = ml.jobs.get(name).status
            if status in TERMINAL:
                seen[name] = status
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"job {name} is still {status} after {timeout} s")
            time.sleep(1)

    def stream(name: str) -> tuple[str, BaseException | None]:
        """What ``ml.jobs.stream`` prints (it writes to stdout, where the steps' lines go),
        and what it raised."""
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                ml.jobs.stream(name)
        except JobException as error:
            return printed.getvalue(), error
        return printed.getvalue(), None

    def invoke(endpoint: str, deployment_name: str | None = None) -> dict:
        job = ml.batch_endpoints.invoke(
            endpoint_name=endpoint, deployment_name=deployment_name, input=data()
        )
        assert job.name, f"invoke returned a job without a name: {job!r}"
        assert job.status in INVOKED, f"job {job.name} started as {job.status}"
        return {"name": job.name, "status": job.status}

    # ---- Sample A: a custom model, Azure's parquet-writing script -------------------------
    def compute_create():
        cluster = AmlCompute(name=COMPUTE, size="STANDARD_DS3_V2", min_instances=0, max_instances=2)
        created = ml.compute.begin_create_or_update(cluster).result()
        assert created.name == COMPUTE, created.name
        assert created.provisioning_state == "Succeeded", created.provisioning_state
        return {"name": created.name, "type": created.type}

    step("compute_create", compute_create)

    def model_create():
        model = Model(
            name="heart-classifier-sklpipe", path=str(MODEL), type=AssetTypes.CUSTOM_MODEL
        )
        created = ml.models.create_or_update(model)
        assert created.name == "heart-classifier-sklpipe", created.name
        return {"id": created.id, "version": created.version}

    step("model_create", model_create)

    def endpoint_create(sample: Path, name: str):
        def create():
            endpoint = load_batch_endpoint(
                str(sample / "endpoint.yml"), params_override=[{"name": name}]
            )
            created = ml.batch_endpoints.begin_create_or_update(endpoint).result()
            assert created.name == name, created.name
            assert created.provisioning_state == "Succeeded", created.provisioning_state
            assert created.auth_mode == "aad_token", created.auth_mode
            # invoke POSTs to it.
            assert created.scoring_uri, f"no scoring_uri: {created!r}"
            return {"scoring_uri": created.scoring_uri}

        return create

    step("endpoint_create", endpoint_create(SAMPLE_A, ENDPOINT))

    environment = {}

    def deployment_create():
        # The sample's environment pins Python 3.8.5 and scikit-learn 1.1.2: ours instead.
        deployment = load_model_batch_deployment(
            str(SAMPLE_A / "deployment.yml"),
            params_override=[{"endpoint_name": ENDPOINT}, {"environment.conda_file": str(CONDA)}],
        )
        assert deployment.name == DEPLOYMENT, deployment.name
        created = ml.batch_deployments.begin_create_or_update(deployment).result()
        assert created.provisioning_state == "Succeeded", created.provisioning_state
        got = ml.batch_deployments.get(DEPLOYMENT, ENDPOINT)
        expected = sample_settings(BatchDeploymentOutputAction.SUMMARY_ONLY, None)
        assert settings_of(got) == expected, settings_of(got)
        assert got.code_configuration.scoring_script == "batch_driver.py", got.code_configuration
        assert "heart-classifier-sklpipe" in got.model, got.model
        environment.update(model=got.model, environment=got.environment)
        return {**environment, "code": got.code_configuration.code}

    step("deployment_create", deployment_create)

    def set_default():
        endpoint = ml.batch_endpoints.get(ENDPOINT)
        endpoint.defaults.deployment_name = DEPLOYMENT
        ml.batch_endpoints.begin_create_or_update(endpoint).result()
        got = ml.batch_endpoints.get(ENDPOINT)
        assert got.defaults.deployment_name == DEPLOYMENT, got.defaults
        return {"default": got.defaults.deployment_name}

    step("set_default", set_default)

    # By default routing first: an invoke by deployment name leaves the name in the SDK's
    # shared default headers (EndpointInvokeFields.DEFAULT_HEADER), for every later invoke.
    def invoke_default():
        job = invoke(ENDPOINT)
        jobs["parquet"] = job["name"]
        return job

    step("invoke", invoke_default)

    def job_completes():
        status = wait_for(jobs["parquet"])
        assert status == "Completed", f"job {jobs['parquet']} ended {status}"
        return {"status": status}

    step("job_completes", job_completes)

    def job_stream():
        printed, error = stream(jobs["parquet"])
        assert error is None, f"stream raised {error!r}; it printed:\n{printed}"
        assert "Execution Summary" in printed, printed
        return {"lines": len(printed.splitlines()), "printed": printed[-2000:]}

    step("job_stream", job_stream)

    def job_download():
        target = DOWNLOADS / "parquet"
        ml.jobs.download(name=jobs["parquet"], download_path=str(target), output_name="score")
        files = listing(target / "named-outputs" / "score")
        missing = [name for name in OUTPUTS if name not in files]
        assert not missing, f"missing {missing}; downloaded {sorted(files)}"
        return {"files": files}

    step("job_download", job_download)

    def list_jobs():
        by_endpoint = [job.name for job in ml.batch_endpoints.list_jobs(endpoint_name=ENDPOINT)]
        by_deployment = [
            job.name
            for job in ml.batch_deployments.list_jobs(endpoint_name=ENDPOINT, name=DEPLOYMENT)
        ]
        assert jobs["parquet"] in by_endpoint, by_endpoint
        assert jobs["parquet"] in by_deployment, by_deployment
        return {"endpoint": by_endpoint, "deployment": by_deployment}

    step("list_jobs", list_jobs)

    def invoke_unknown_deployment():
        """The SDK lists the endpoint's deployments and refuses the name itself."""
        before = len(list(ml.batch_endpoints.list_jobs(endpoint_name=ENDPOINT)))
        try:
            ml.batch_endpoints.invoke(endpoint_name=ENDPOINT, deployment_name="nope", input=data())
        except ValidationException as error:
            assert "nope" in str(error), str(error)
            after = len(list(ml.batch_endpoints.list_jobs(endpoint_name=ENDPOINT)))
            assert after == before, f"{before} jobs before, {after} after"
            return {"raised": type(error).__name__, "message": str(error)}
        raise AssertionError("invoke with deployment_name='nope' did not raise")

    step("invoke_unknown_deployment", invoke_unknown_deployment)

    def slow_deployment_create():
        """Sample A's model and environment, a script that sleeps 5 s per file."""
        slow = ModelBatchDeployment(
            name=SLOW_DEPLOYMENT,
            endpoint_name=ENDPOINT,
            model=environment["model"],
            environment=environment["environment"],
            code_configuration=CodeConfiguration(code=str(SLOW), scoring_script="batch_driver.py"),
            compute=COMPUTE,
            resources=ResourceConfiguration(instance_count=1),
            settings=ModelBatchDeploymentSettings(
                mini_batch_size=1,
                max_concurrency_per_instance=1,
                output_action=BatchDeploymentOutputAction.SUMMARY_ONLY,
                retry_settings=BatchRetrySettings(max_retries=0, timeout=60),
                logging_level="info",
            ),
        )
        created = ml.batch_deployments.begin_create_or_update(slow).result()
        assert created.provisioning_state == "Succeeded", created.provisioning_state
        # Adding a deployment leaves the endpoint's default as it was.
        assert ml.batch_endpoints.get(ENDPOINT).defaults.deployment_name == DEPLOYMENT
        return {"name": created.name}

    step("slow_deployment_create", slow_deployment_create)

    def cancel():
        job = invoke(ENDPOINT, SLOW_DEPLOYMENT)
        jobs["slow"] = job["name"]
        ml.jobs.begin_cancel(job["name"]).result()
        status = wait_for(job["name"], timeout=120)
        assert status == "Canceled", f"job {job['name']} ended {status}"
        return {"name": job["name"], "invoked": job["status"], "status": status}

    step("cancel", cancel)

    # ---- Sample B: an MLflow model with no code or environment ----------------------------
    def mlflow_model_create():
        model = Model(
            name="heart-classifier-mlflow", path=str(MLFLOW_MODEL), type=AssetTypes.MLFLOW_MODEL
        )
        created = ml.models.create_or_update(model)
        assert created.type == AssetTypes.MLFLOW_MODEL, created.type
        return {"id": created.id, "version": created.version}

    step("mlflow_model_create", mlflow_model_create)
    step("mlflow_endpoint_create", endpoint_create(SAMPLE_B, MLFLOW_ENDPOINT))

    def mlflow_deployment_create():
        deployment = load_model_batch_deployment(
            str(SAMPLE_B / "deployment-simple" / "deployment.yml"),
            params_override=[{"endpoint_name": MLFLOW_ENDPOINT}],
        )
        assert deployment.name == MLFLOW_DEPLOYMENT, deployment.name
        created = ml.batch_deployments.begin_create_or_update(deployment).result()
        assert created.provisioning_state == "Succeeded", created.provisioning_state
        got = ml.batch_deployments.get(MLFLOW_DEPLOYMENT, MLFLOW_ENDPOINT)
        expected = sample_settings(BatchDeploymentOutputAction.APPEND_ROW, "predictions.csv")
        assert settings_of(got) == expected, settings_of(got)
        assert got.code_configuration is None, got.code_configuration
        assert "heart-classifier-mlflow" in got.model, got.model
        return {"model": got.model, "environment": got.environment}

    step("mlflow_deployment_create", mlflow_deployment_create)

    def mlflow_invoke():
        job = invoke(MLFLOW_ENDPOINT, MLFLOW_DEPLOYMENT)
        jobs["mlflow"] = job["name"]
        return job

    step("mlflow_invoke", mlflow_invoke)

    def mlflow_stream():
        """Streamed while the job runs: the SDK prints its logs until it ends."""
        printed, error = stream(jobs["mlflow"])
        assert error is None, f"stream raised {error!r}; it printed:\n{printed}"
        assert "Execution Summary" in printed, printed
        return {"lines": len(printed.splitlines()), "printed": printed[-2000:]}

    step("mlflow_stream", mlflow_stream)

    def mlflow_job_completes():
        status = wait_for(jobs["mlflow"])
        assert status == "Completed", f"job {jobs['mlflow']} ended {status}"
        return {"status": status}

    step("mlflow_job_completes", mlflow_job_completes)

    def mlflow_download():
        target = DOWNLOADS / "mlflow"
        ml.jobs.download(name=jobs["mlflow"], download_path=str(target), output_name="score")
        files = listing(target / "named-outputs" / "score")
        assert "predictions.csv" in files, sorted(files)
        lines = Path(files["predictions.csv"]["path"]).read_text().splitlines()
        return {"files": files, "lines": len(lines), "head": lines[:3]}

    step("mlflow_download", mlflow_download)

    def data_asset_invoke():
        """The same files registered as a data asset, named by azureml:<name>@latest."""
        ml.data.create_or_update(
            Data(name="heart-unlabeled", path=str(DATA), type=AssetTypes.URI_FOLDER)
        )
        job = ml.batch_endpoints.invoke(
            endpoint_name=MLFLOW_ENDPOINT,
            deployment_name=MLFLOW_DEPLOYMENT,
            input=Input(type=AssetTypes.URI_FOLDER, path="azureml:heart-unlabeled@latest"),
        )
        status = wait_for(job.name)
        assert status == "Completed", f"job {job.name} ended {status}"
        target = DOWNLOADS / "data-asset"
        ml.jobs.download(name=job.name, download_path=str(target), output_name="score")
        files = listing(target / "named-outputs" / "score")
        return {"name": job.name, "files": files}

    step("data_asset_invoke", data_asset_invoke)

    # ---- Azure's published custom MLflow script: it cannot score --------------------------
    def failing_deployment_create():
        deployment = load_model_batch_deployment(
            str(SAMPLE_B / "deployment-custom" / "deployment.yml"),
            params_override=[
                {"endpoint_name": MLFLOW_ENDPOINT},
                {"environment.conda_file": str(CONDA)},
                {"settings.error_threshold": 0},
            ],
        )
        assert deployment.name == FAILING_DEPLOYMENT, deployment.name
        created = ml.batch_deployments.begin_create_or_update(deployment).result()
        assert created.provisioning_state == "Succeeded", created.provisioning_state
        got = ml.batch_deployments.get(FAILING_DEPLOYMENT, MLFLOW_ENDPOINT)
        assert got.error_threshold == 0, got.error_threshold
        return {"name": got.name, "error_threshold": got.error_threshold}

    step("failing_deployment_create", failing_deployment_create)

    def failing_script():
        job = invoke(MLFLOW_ENDPOINT, FAILING_DEPLOYMENT)
        jobs["failing"] = job["name"]
        printed, error = stream(job["name"])
        assert isinstance(error, JobException), f"stream did not raise; it printed:\n{printed}"
        # The SDK's words when the run's details carry no error.
        assert "Detailed error not set" not in str(error), str(error)
        status = wait_for(job["name"], timeout=60)
        assert status == "Failed", f"job {job['name']} ended {status}"
        return {"name": job["name"], "status": status, "error": str(error)[-2000:]}

    step("failing_script", failing_script)

    # ---- deletes: jobs outlive their deployments and endpoints ----------------------------
    def delete_deployment():
        ml.batch_deployments.begin_delete(name=SLOW_DEPLOYMENT, endpoint_name=ENDPOINT).result()
        names = sorted(d.name for d in ml.batch_deployments.list(endpoint_name=ENDPOINT))
        assert names == [DEPLOYMENT], names
        return {"deployments": names}

    step("delete_deployment", delete_deployment)

    def delete_endpoints():
        for name in (ENDPOINT, MLFLOW_ENDPOINT):
            ml.batch_endpoints.begin_delete(name=name).result()
            try:
                ml.batch_endpoints.get(name)
            except ResourceNotFoundError:
                continue
            raise AssertionError(f"endpoint {name} is still there after its delete finished")
        return {"deleted": [ENDPOINT, MLFLOW_ENDPOINT]}

    step("delete_endpoints", delete_endpoints)

    def jobs_survive():
        statuses = {name: ml.jobs.get(name).status for name in jobs.values()}
        assert statuses == {name: seen[name] for name in jobs.values()}, statuses
        return {"statuses": statuses}

    step("jobs_survive", jobs_survive)


if __name__ == "__main__":
    walk(run_steps)
