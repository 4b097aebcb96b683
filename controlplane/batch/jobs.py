"""Invoking a batch endpoint starts a job: which deployment, what input, where the output
goes and the settings it runs with are all decided here, once, and kept on the job. Azure's
SDK and REST callers (PascalCase) are both read: keys are matched whatever their case."""

from __future__ import annotations

import logging
import re
import uuid
from posixpath import basename, dirname

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane import tasks
from controlplane.arm.errors import ArmError, bad_request, conflict
from controlplane.batch import states
from controlplane.batch.models import BatchJob, JobStatus, OutputAction
from controlplane.batch.services import batch_compute, find_deployment, max_instances
from controlplane.blobstore import storage
from controlplane.core import references
from controlplane.core.durations import parse_seconds

log = logging.getLogger(__name__)

# Weir's own opt-in, a deployment property (or an invocation's properties.properties): a
# mini-batch whose files, model, code, environment and settings match one an earlier job
# committed reuses its result instead of being scored again.
INCREMENTAL = "weir.incrementalScoring"

MAX_REQUEST_ID = 255
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")
DATA_ASSET = re.compile(r"/data/[^/]+(/versions/[^/]+)?$|^azureml:[^/]+$", re.IGNORECASE)
DATASTORE_ID = re.compile(r"/datastores/(?P<name>[^/]+)$", re.IGNORECASE)


def lease_deadline():
    return timezone.now() + timezone.timedelta(seconds=settings.WEIR_OPERATION_LEASE_SECONDS)


def _keys(value) -> dict:
    """A JSON object with its keys lower-cased (values as sent); {} for anything else."""
    return {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else {}


def _int(value, target: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        # params_override sends strings ("5"); ARM's own callers send numbers.
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        else:
            raise bad_request(f"{target} must be a whole number, not {value!r}.", target)
    if value < minimum:
        raise bad_request(f"{target} must be at least {minimum}, not {value}.", target)
    return value


def invoke(endpoint, body, principal: str, request_id: str | None, deployment_name: str | None):
    """Start a job on the endpoint; returns (job, created). The same ``request_id`` (the
    SDK's repeatability_request-id, resent on its retries) answers with the same job."""
    workspace = endpoint.workspace
    if request_id and len(request_id) > MAX_REQUEST_ID:
        raise bad_request(
            f"repeatability_request-id is at most {MAX_REQUEST_ID} characters.",
            "repeatability_request-id",
        )
    if request_id:
        existing = BatchJob.objects.filter(workspace=workspace, request_id=request_id).first()
        if existing is not None:
            return existing, False
    deployment = _deployment(endpoint, deployment_name)
    props = _keys(_keys(body).get("properties"))
    name = props.get("name") or f"batchjob-{uuid.uuid4()}"
    if not isinstance(name, str) or not JOB_NAME.match(name):
        raise bad_request(
            "A job name is 1-255 letters, digits, '-' and '_', starting with a letter or digit.",
            "properties.name",
        )
    run = job_settings(deployment, props)
    inputs = _inputs(workspace, props)
    output = _output(workspace, props, name, run)
    experiment = _keys(props.get("properties")).get("experimentname") or endpoint.name
    try:
        with transaction.atomic():
            job = BatchJob.objects.create(
                workspace=workspace,
                name=name,
                endpoint=endpoint,
                deployment=deployment,
                endpoint_name=endpoint.name,
                deployment_name=deployment.name,
                experiment_name=str(experiment)[:255],
                request_id=request_id or None,
                settings=run,
                inputs=inputs,
                output=output,
                created_by=principal,
                lease_expires_at=lease_deadline(),
            )
            transaction.on_commit(lambda: enqueue(job))
    except IntegrityError:
        if request_id:
            existing = BatchJob.objects.filter(workspace=workspace, request_id=request_id).first()
            if existing is not None:
                return existing, False
        raise conflict(
            f"A job named '{name}' exists in this workspace.", "properties.name"
        ) from None
    return job, True


def enqueue(job: BatchJob) -> None:
    """Send the job's task; if the broker is down the reconciler sends it once its lease
    lapses."""
    try:
        tasks.send(tasks.RUN_BATCH_JOB, job_id=str(job.id))
    except Exception:  # noqa: BLE001 - retried by the reconciler
        log.exception("could not enqueue batch job %s", job.name)


def _deployment(endpoint, name: str | None):
    if name:
        deployment = find_deployment(endpoint, name)
        if deployment is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"Batch deployment '{name}' was not found on endpoint '{endpoint.name}'.",
                "azureml-model-deployment",
            )
        return deployment
    if endpoint.default_deployment:
        deployment = find_deployment(endpoint, endpoint.default_deployment)
        if deployment is not None:
            return deployment
    only = list(endpoint.deployments.select_related("endpoint__workspace")[:2])
    if len(only) == 1:
        return only[0]
    raise ArmError(
        404,
        "ResourceNotFound",
        f"Batch endpoint '{endpoint.name}' has no default deployment: set "
        "defaults.deploymentName or name a deployment (azureml-model-deployment).",
    )


def job_settings(deployment, props: dict) -> dict:
    """What the job runs with: the deployment's settings with the invocation's overrides,
    and its assets resolved to the versions they name now."""
    workspace = deployment.endpoint.workspace
    compute = batch_compute(workspace, deployment.compute)
    try:
        model = references.resolve(workspace, deployment.model["assetId"], "models")
        code_id = (deployment.code_configuration or {}).get("codeId")
        code = references.resolve(workspace, code_id, "codes") if code_id else None
        environment = (
            references.resolve(workspace, deployment.environment_id, "environments")
            if deployment.environment_id
            else None
        )
    except ValueError as exc:
        raise ArmError(409, "DeploymentAssetMissing", f"The deployment's {exc}") from None
    retry = {"maxRetries": 3, "timeout": "PT30S", **(deployment.retry_settings or {})}
    run = {
        "model": model.arm_id,
        "mlflow": model.is_mlflow and code is None and environment is None,
        "code": code.arm_id if code else None,
        "scoringScript": (deployment.code_configuration or {}).get("scoringScript"),
        "environment": environment.arm_id if environment else None,
        "environmentVariables": deployment.environment_variables or {},
        "compute": compute.name,
        "instanceCount": (deployment.resources or {}).get("instanceCount", 1),
        "maxConcurrencyPerInstance": deployment.max_concurrency_per_instance,
        "miniBatchSize": deployment.mini_batch_size,
        "outputAction": deployment.output_action,
        "outputFileName": deployment.output_file_name,
        "retrySettings": retry,
        "errorThreshold": deployment.error_threshold,
        "loggingLevel": deployment.logging_level,
        "incremental": _flag((deployment.properties or {}).get(INCREMENTAL)),
    }
    if (asked := _keys(props.get("properties")).get(INCREMENTAL.lower())) is not None:
        run["incremental"] = _flag(asked)
    if "minibatchsize" in props:
        run["miniBatchSize"] = _int(props["minibatchsize"], "properties.miniBatchSize", 1)
    if (count := _keys(props.get("compute")).get("instancecount")) is not None:
        run["instanceCount"] = _int(count, "properties.compute.instanceCount", 1)
        if run["instanceCount"] > max_instances(compute):
            raise bad_request(
                f"compute.instanceCount is {run['instanceCount']}, but compute "
                f"'{compute.name}' has at most {max_instances(compute)} node(s).",
                "properties.compute.instanceCount",
            )
    if "errorthreshold" in props:
        run["errorThreshold"] = _int(props["errorthreshold"], "properties.errorThreshold", -1)
    retry_override = _keys(props.get("retrysettings"))
    if "maxretries" in retry_override:
        retry["maxRetries"] = _int(
            retry_override["maxretries"], "properties.retrySettings.maxRetries", 0
        )
    if retry_override.get("timeout"):
        try:
            parse_seconds(str(retry_override["timeout"]))
        except ValueError as exc:
            raise bad_request(str(exc), "properties.retrySettings.timeout") from None
        retry["timeout"] = str(retry_override["timeout"])
    if file_name := props.get("outputfilename"):
        run["outputFileName"] = _file_name(file_name, "properties.outputFileName")
    return run


def _flag(value) -> bool:
    return str(value).lower() in ("true", "1", "yes")


def _file_name(value, target: str) -> str:
    if not isinstance(value, str) or not value or "/" in value or value in (".", ".."):
        raise bad_request(f"{target} is a file name, without a folder.", target)
    return value


def _inputs(workspace, props: dict) -> dict:
    """The one data input a model deployment takes (its name is ignored, as Azure does)."""
    given = props.get("inputdata") or {}
    if not isinstance(given, dict) or not given:
        dataset = _keys(props.get("dataset"))
        if dataset.get("uri") or dataset.get("path"):
            given = {"dataset": {"jobInputType": "UriFolder", "uri": dataset.get("uri")}}
    if not isinstance(given, dict) or len(given) != 1:
        raise bad_request(
            "A batch job takes exactly one input (properties.inputData), a folder or a file.",
            "properties.inputData",
        )
    ((name, spec),) = given.items()
    spec = _keys(spec)
    target = f"properties.inputData.{name}"
    kind = str(spec.get("jobinputtype") or "").replace("_", "").lower()
    if kind not in ("urifolder", "urifile"):
        raise bad_request(
            f"jobInputType is {spec.get('jobinputtype')!r}; a batch job reads a UriFolder "
            "or a UriFile.",
            f"{target}.jobInputType",
        )
    uri = spec.get("uri")
    if not isinstance(uri, str) or not uri:
        raise bad_request("The input names its data (uri).", f"{target}.uri")
    if DATA_ASSET.search(uri):
        # A data asset (the SDK sends its version's ARM id): the job reads what it names.
        try:
            data = references.resolve(workspace, uri, "data")
        except ValueError as exc:
            raise bad_request(str(exc), f"{target}.uri") from None
        if data.data_type == "mltable":
            raise bad_request(
                f"'{uri}' is an mltable; a batch job reads a uri_folder or uri_file.",
                f"{target}.uri",
            )
        kind = "urifile" if data.data_type == "uri_file" else "urifolder"
        uri = data.data_uri
    try:
        location = storage.resolve(workspace, uri)
    except ValueError as exc:
        raise bad_request(str(exc), f"{target}.uri") from None
    if not storage.exists(location):
        raise bad_request(f"Nothing is stored at '{uri}'.", f"{target}.uri")
    return {name: {"jobInputType": "UriFile" if kind == "urifile" else "UriFolder", "uri": uri}}


def _output(workspace, props: dict, job_name: str, run: dict) -> dict:
    """Where the job's outputs go: a folder on the default datastore, and the file name
    append_row writes. By default ``azureml/<job>/score/``, where Azure's SDK looks."""
    folder = f"azureml://datastores/{storage.DEFAULT_DATASTORE}/paths/azureml/{job_name}/score/"
    file_name = run["outputFileName"]
    target = "properties.outputData"
    output_data = props.get("outputdata")
    if isinstance(output_data, dict) and output_data:
        ((name, spec),) = list(output_data.items())[:1]
        spec = _keys(spec)
        target = f"properties.outputData.{name}.uri"
        uri = spec.get("uri")
        if not isinstance(uri, str) or not uri:
            raise bad_request("The output names where it goes (uri).", target)
        if str(spec.get("joboutputtype") or "").replace("_", "").lower() == "urifile":
            # A UriFile output is the predictions file itself.
            folder, file_name = dirname(uri.rstrip("/")) + "/", basename(uri.rstrip("/"))
        else:
            folder = uri if uri.endswith("/") else uri + "/"
    elif dataset := _keys(props.get("outputdataset")):
        target = "properties.outputDataset.datastoreId"
        store = DATASTORE_ID.search(str(dataset.get("datastoreid") or ""))
        datastore = store["name"] if store else str(dataset.get("datastoreid") or "")
        datastore = datastore.removeprefix("azureml:")
        path = str(dataset.get("path") or f"azureml/{job_name}/score").strip("/")
        folder = f"azureml://datastores/{datastore}/paths/{path}/"
    try:
        location = storage.resolve(workspace, folder)
    except ValueError as exc:
        raise bad_request(str(exc), target) from None
    if location.container != location.account.default_container:
        raise bad_request(
            f"'{folder}' is not on the default datastore ({storage.DEFAULT_DATASTORE}), where "
            "job outputs go.",
            target,
        )
    run["outputFileName"] = file_name
    # Kept as a datastore path whatever form it was given in (a blob URL, say): that is
    # what the job's answers and run history resolve it to.
    path = location.path.rstrip("/")
    folder = f"azureml://datastores/{storage.DEFAULT_DATASTORE}/paths/{path}/"
    return {"uri": folder, "fileName": file_name}


def cancel(job: BatchJob) -> None:
    """Ask the job to stop: a queued job is Canceled at once, a running one when its worker
    sees the request (within a second); a finished job stays as it is."""
    if job.status == JobStatus.QUEUED and states.transition(job.pk, JobStatus.CANCELED):
        return
    states.transition(job.pk, JobStatus.CANCEL_REQUESTED)


def summary_only(job: BatchJob) -> bool:
    return job.settings.get("outputAction") == OutputAction.SUMMARY_ONLY
