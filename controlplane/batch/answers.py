"""A batch job as Azure's clients read it: the invocation's answer and the management
front end's job lists (``.../batchEndpoints/{e}/jobs/{name}``), the ARM job
(``workspaces/{w}/jobs/{name}``, a pipeline job), and its run-history record."""

from __future__ import annotations

from controlplane.batch.models import BatchJob
from controlplane.blobstore import storage

PROVIDER_TYPE = "Microsoft.MachineLearningServices/workspaces"


def _time(moment) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None


def system_data(job: BatchJob) -> dict:
    return {
        "createdBy": job.created_by,
        "createdByType": "User",
        "createdAt": _time(job.created_at),
        "lastModifiedBy": job.created_by,
        "lastModifiedByType": "User",
        "lastModifiedAt": _time(job.ended_at or job.started_at or job.created_at),
    }


def tags(job: BatchJob) -> dict:
    return {
        "azureml.batchrun": "true",
        "azureml.deploymentname": job.deployment_name,
        "azureml.jobtype": "azureml.pipelinejob",
    }


def properties(job: BatchJob) -> dict:
    return {
        "azureml.endpointname": job.endpoint_name,
        "azureml.deploymentname": job.deployment_name,
        "runSource": "BatchDeployment",
        "runType": "HTTP",
        "azureml.defaultDataStoreName": storage.DEFAULT_DATASTORE,
    }


def studio(job: BatchJob, request) -> dict:
    return {"endpoint": request.build_absolute_uri("/") if request else None}


def invocation(job: BatchJob, request) -> dict:
    """What an invocation answers and the front end's job lists hold."""
    workspace = job.workspace
    return {
        "id": f"{workspace.arm_id}/batchEndpoints/{job.endpoint_name}/jobs/{job.name}",
        "name": job.name,
        "type": f"{PROVIDER_TYPE}/batchEndpoints/jobs",
        "properties": {
            "status": job.status,
            "provisioningState": "Succeeded",
            "description": None,
            "interactionEndpoints": {
                "Studio": {**studio(job, request), "jobEndpointType": "Studio"}
            },
            "tags": tags(job),
            "properties": properties(job),
            "inputData": job.inputs,
            "outputData": {"score": output_data(job)},
            "outputFileName": job.output.get("fileName"),
            "miniBatchSize": job.settings.get("miniBatchSize"),
            "errorThreshold": job.settings.get("errorThreshold"),
            "retrySettings": job.settings.get("retrySettings"),
            "compute": {"instanceCount": job.settings.get("instanceCount")},
            "output": {},
            "error": job.error,
        },
        "systemData": system_data(job),
    }


def output_data(job: BatchJob) -> dict:
    return {"jobOutputType": "UriFolder", "uri": job.output.get("uri"), "mode": "Upload"}


def arm_job(job: BatchJob, request) -> dict:
    """The job as ``ml.jobs.get`` reads it: a pipeline job with Azure's batch tags."""
    return {
        "id": job.arm_id,
        "name": job.name,
        "type": f"{PROVIDER_TYPE}/jobs",
        "properties": {
            "jobType": "Pipeline",
            "status": job.status,
            "displayName": job.name,
            "experimentName": job.experiment_name,
            "description": None,
            "isArchived": False,
            "computeId": f"{job.workspace.arm_id}/computes/{job.settings.get('compute')}",
            "services": {"Studio": {**studio(job, request), "jobServiceType": "Studio"}},
            "tags": tags(job),
            "properties": properties(job),
            "inputs": {
                name: {
                    "jobInputType": _kind(spec["jobInputType"]),
                    "uri": spec["uri"],
                    "mode": "ReadOnlyMount",
                }
                for name, spec in job.inputs.items()
            },
            "outputs": {
                "score": {
                    "jobOutputType": "uri_folder",
                    "uri": job.output.get("uri"),
                    "mode": "Upload",
                }
            },
            "jobs": {},
            "settings": {},
        },
        "systemData": system_data(job),
    }


def _kind(value: str) -> str:
    return {"UriFolder": "uri_folder", "UriFile": "uri_file"}.get(value, value)


def run(job: BatchJob, logs: dict[str, str]) -> dict:
    """The job's run-history record (``runs/{id}/details``)."""
    return {
        "runId": job.name,
        "runUuid": str(job.id),
        "parentRunId": None,
        "rootRunId": job.name,
        "status": job.status,
        "runType": "azureml.pipelinerun",
        "name": job.name,
        "displayName": job.name,
        "experimentName": job.experiment_name,
        "createdUtc": _time(job.created_at),
        "startTimeUtc": _time(job.started_at),
        "endTimeUtc": _time(job.ended_at),
        "properties": properties(job),
        "tags": tags(job),
        "logFiles": logs,
        "warnings": [],
        "error": {"error": job.error} if job.error else None,
    }
