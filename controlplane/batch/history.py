"""The run-history and data services Azure's SDK follows a batch job through:
``jobs.stream`` polls a run's details and reads its logs; ``jobs.download`` asks for the
run's outputs (rundata), resolves their data asset to a datastore path, then lists and reads
the blobs there."""

from __future__ import annotations

import re

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from controlplane.arm.errors import bad_request
from controlplane.arm.views import ScopedView
from controlplane.batch import answers, files
from controlplane.batch.models import BatchJob
from controlplane.batch.views import get_job
from controlplane.blobstore import storage
from controlplane.core.views.lookups import get_workspace

OUTPUT_ASSET = re.compile(r"/data/azureml_(?P<job>.+)_output_data_score/versions/1$")


def output_asset_id(job: BatchJob) -> str:
    return (
        f"azureml://locations/{settings.WEIR_LOCATION}/workspaces/{job.workspace.workspace_id}"
        f"/data/azureml_{job.name}_output_data_score/versions/1"
    )


class HistoryView(ScopedView):
    """Authenticated like the API; no api-version (run history takes v1.0 in its path)."""


@extend_schema(exclude=True)
class RunDetailsView(HistoryView):
    def get(self, request, **kwargs):
        job = get_job(kwargs)
        return Response(answers.run(job, files.log_urls(job)))


@extend_schema(exclude=True)
class RunChildrenView(HistoryView):
    def get(self, request, **kwargs):
        get_job(kwargs)
        # A Weir job is one run: no child runs.
        return Response({"value": [], "continuationToken": None, "nextLink": None})


@extend_schema(exclude=True)
class RunDataView(HistoryView):
    def post(self, request, **kwargs):
        run_id = request.data.get("runId") if isinstance(request.data, dict) else None
        if not isinstance(run_id, str) or not run_id:
            raise bad_request("rundata names a run (runId).", "runId")
        job = get_job({**kwargs, "jobName": run_id})
        metadata = answers.run(job, files.log_urls(job))
        metadata["outputs"] = {"score": {"assetId": output_asset_id(job), "type": "uri_folder"}}
        return Response({"runMetadata": metadata})


@extend_schema(exclude=True)
class ResolveUrisView(HistoryView):
    def post(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        values = request.data.get("values") if isinstance(request.data, dict) else None
        if not isinstance(values, list):
            raise bad_request("batchGetResolvedUris takes a list of data asset ids.", "values")
        resolved = {}
        for asset_id in values:
            match = OUTPUT_ASSET.search(str(asset_id))
            job = (
                BatchJob.objects.filter(workspace=workspace, name__lower=match["job"].lower())
                .select_related("workspace")
                .first()
                if match
                else None
            )
            if job is not None:
                resolved[asset_id] = {"uri": long_form(job), "type": "uri_folder"}
        return Response({"values": resolved})


def long_form(job: BatchJob) -> str:
    """The job's output folder as a workspace-qualified datastore URI."""
    match = storage.DATASTORE_URI.match(job.output["uri"])
    workspace = job.workspace
    return (
        f"azureml://subscriptions/{workspace.subscription_id}/resourcegroups/"
        f"{workspace.resource_group}/workspaces/{workspace.name}/datastores/"
        f"{match['datastore']}/paths/{match['path']}"
    )
