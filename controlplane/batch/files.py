"""Where a job's files live in the workspace's blob store: its outputs (a folder on the
default datastore) and its logs, the progress log Azure's SDK streams among them."""

from __future__ import annotations

from controlplane.batch.models import BatchJob
from controlplane.blobstore import storage
from controlplane.blobstore.models import Blob

# The run-history log Azure's SDK streams (it matches user_logs/std_log*.txt).
STREAMED_LOG = "user_logs/std_log.txt"


def logs_prefix(job: BatchJob) -> str:
    return f"azureml/{job.name}/logs/"


def log_blob_name(job: BatchJob) -> str:
    """The progress log, under the name Azure's SDK streams."""
    return logs_prefix(job) + STREAMED_LOG


def log_urls(job: BatchJob) -> dict[str, str]:
    """Each of the job's logs (the progress log and every scoring process's stdout and
    stderr), by its name under the job's logs, as a read-only SAS URL: the SDK reads them
    with no Authorization header."""
    account = storage.account_for(job.workspace)
    container, prefix = account.default_container, logs_prefix(job)
    names = Blob.objects.filter(
        account=account, container=container, name__startswith=prefix
    ).values_list("name", flat=True)
    urls = {}
    for name in sorted(names):
        token = storage.sas_token(account, container, name, "r", "b")
        urls[name[len(prefix) :]] = f"{storage.blob_url(account, container, name)}?{token}"
    return urls


def output_location(job: BatchJob) -> storage.BlobLocation:
    return storage.resolve(job.workspace, job.output["uri"])
