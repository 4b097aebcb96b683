"""Batch endpoints and deployments (ARM resources, declared on arm/resources.py), invoking
an endpoint, and the jobs it starts: ARM's ``workspaces/{w}/jobs`` and the management front
end's job lists Azure's SDK reads."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from controlplane.arm import pagination
from controlplane.arm.errors import not_found
from controlplane.arm.filters import filter_tags
from controlplane.arm.pagination import page
from controlplane.arm.resources import ArmListView, ArmResourceView
from controlplane.arm.responses import accepted_response
from controlplane.arm.views import ArmView, ScopedView, principal_name
from controlplane.batch import answers, jobs, services
from controlplane.batch.models import BatchDeployment, BatchEndpoint, BatchJob
from controlplane.batch.serializers import (
    BatchDeploymentSerializer,
    BatchDeploymentUpdateSerializer,
    BatchEndpointSerializer,
    BatchEndpointUpdateSerializer,
)
from controlplane.core import names
from controlplane.core.choices import OperationKind
from controlplane.core.serializers.endpoint import EndpointAuthKeysSerializer
from controlplane.core.services import operations
from controlplane.core.views.lookups import get_workspace


def get_batch_endpoint(kwargs, workspace=None) -> BatchEndpoint:
    endpoint = services.find_endpoint(workspace or get_workspace(kwargs), kwargs["endpointName"])
    if endpoint is None:
        raise not_found("Batch endpoint", kwargs["endpointName"])
    return endpoint


def get_job(kwargs) -> BatchJob:
    workspace = get_workspace(kwargs)
    job = (
        BatchJob.objects.filter(workspace=workspace, name__lower=kwargs["jobName"].lower())
        .select_related("workspace")
        .first()
    )
    if job is None:
        raise not_found("Job", kwargs["jobName"])
    return job


class BatchEndpointListView(ArmListView):
    serializer_class = BatchEndpointSerializer
    operation_id = "BatchEndpoints_List"
    list_parameters = [pagination.COUNT, pagination.SKIP]

    def rows(self):
        workspace = get_workspace(self.kwargs)
        rows = BatchEndpoint.objects.filter(workspace=workspace).select_related("workspace")
        return filter_tags(rows, self.request.query_params.get("tags")).order_by(
            "created_at", "name"
        )


class BatchEndpointView(ArmResourceView):
    serializer_class = BatchEndpointSerializer
    update_serializer_class = BatchEndpointUpdateSerializer
    long_running = True
    operation_group = "BatchEndpoints"
    label = "Batch endpoint"
    name_kwarg = "endpointName"
    service = services.endpoints
    name_rules = (names.ENDPOINT,)

    def parent(self):
        return get_workspace(self.kwargs)

    def find(self, workspace):
        return services.find_endpoint(workspace, self.resource_name)


class BatchEndpointListKeysView(ArmView):
    @extend_schema(
        operation_id="BatchEndpoints_ListKeys", request=None, responses=EndpointAuthKeysSerializer
    )
    def post(self, request, **kwargs):
        """Batch endpoints take Microsoft Entra (here: Weir) tokens only: no keys."""
        get_batch_endpoint(kwargs)
        return Response({"primaryKey": None, "secondaryKey": None})


class BatchDeploymentListView(ArmListView):
    serializer_class = BatchDeploymentSerializer
    operation_id = "BatchDeployments_List"
    list_parameters = [pagination.SKIP, OpenApiParameter("$top", int)]

    def rows(self):
        endpoint = get_batch_endpoint(self.kwargs)
        return (
            BatchDeployment.objects.filter(endpoint=endpoint)
            .select_related("endpoint__workspace")
            .order_by("created_at", "name")
        )


class BatchDeploymentView(ArmResourceView):
    serializer_class = BatchDeploymentSerializer
    update_serializer_class = BatchDeploymentUpdateSerializer
    long_running = True
    operation_group = "BatchDeployments"
    label = "Batch deployment"
    name_kwarg = "deploymentName"
    service = services.deployments
    name_rules = (names.DEPLOYMENT,)

    def parent(self):
        return get_batch_endpoint(self.kwargs)

    def find(self, endpoint):
        return services.find_deployment(endpoint, self.resource_name)

    def serializer_context(self, endpoint) -> dict:
        return {"workspace": endpoint.workspace}


class InvokeView(ScopedView):
    """``POST`` an endpoint's scoringUri: start a job. 201 for a new job, 200 when the
    repeatability_request-id names one already started (Azure's SDK resends it on its
    retries)."""

    @extend_schema(exclude=True)
    def post(self, request, **kwargs):
        endpoint = get_batch_endpoint(kwargs)
        job, created = jobs.invoke(
            endpoint,
            request.data,
            principal_name(request),
            request.headers.get("repeatability_request-id")
            or request.headers.get("repeatability-request-id"),
            request.headers.get("azureml-model-deployment"),
        )
        return Response(answers.invocation(job, request), status=201 if created else 200)


class EndpointJobListView(ScopedView):
    """The management front end's job list of an endpoint or one of its deployments
    (``batch_endpoints.list_jobs``, ``batch_deployments.list_jobs``)."""

    @extend_schema(exclude=True)
    def get(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        rows = BatchJob.objects.filter(
            workspace=workspace, endpoint_name__iexact=kwargs["endpointName"]
        )
        if "deploymentName" in kwargs:
            rows = rows.filter(deployment_name__iexact=kwargs["deploymentName"])
        rows = rows.select_related("workspace").order_by("-created_at", "name")
        return Response(
            page(request, rows, lambda jobs_: [answers.invocation(j, request) for j in jobs_])
        )


class JobListView(ArmView):
    @extend_schema(
        operation_id="Jobs_List",
        responses=OpenApiResponse(description="The workspace's batch jobs, as pipeline jobs."),
    )
    def get(self, request, **kwargs):
        workspace = get_workspace(kwargs)
        rows = BatchJob.objects.filter(workspace=workspace).select_related("workspace")
        rows = rows.order_by("-created_at", "name")
        return Response(
            page(request, rows, lambda jobs_: [answers.arm_job(j, request) for j in jobs_])
        )


class JobView(ArmView):
    @extend_schema(
        operation_id="Jobs_Get",
        responses=OpenApiResponse(description="A batch job, as a pipeline job."),
    )
    def get(self, request, **kwargs):
        return Response(answers.arm_job(get_job(kwargs), request))


class JobCancelView(ArmView):
    @extend_schema(
        operation_id="Jobs_Cancel",
        request=None,
        responses={202: OpenApiResponse(description="The cancel request is recorded.")},
    )
    def post(self, request, **kwargs):
        job = get_job(kwargs)
        jobs.cancel(job)
        operation = operations.finished(
            OperationKind.CANCEL_BATCH_JOB,
            resource_id=job.arm_id,
            subscription_id=job.workspace.subscription_id,
            principal=principal_name(request),
        )
        return accepted_response(request, operation)
