"""Where a job's files live in the workspace's blob store: its outputs (a folder on the
default datastore) and the progress log Azure's SDK streams."""

from __future__ import annotations

from controlplane.batch.answers import STREAMED_LOG
from controlplane.batch.models import BatchJob
from controlplane.blobstore import storage
from controlplane.blobstore.models import Blob


def log_blob_name(job: BatchJob) -> str:
    return f"azureml/{job.name}/logs/{STREAMED_LOG}"


def log_url(job: BatchJob) -> str | None:
    """A read-only SAS URL of the job's progress log (the SDK reads it with no
    Authorization header), or None before the job has written one."""
    account = storage.account_for(job.workspace)
    container, name = account.default_container, log_blob_name(job)
    if not Blob.objects.filter(account=account, container=container, name=name).exists():
        return None
    token = storage.sas_token(account, container, name, "r", "b")
    return f"{storage.blob_url(account, container, name)}?{token}"


def output_location(job: BatchJob) -> storage.BlobLocation:
    return storage.resolve(job.workspace, job.output["uri"])
