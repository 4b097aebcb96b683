"""Batch endpoints and deployments (ARM resources), the jobs their invocations start, and
each job's ledger of mini-batches."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models.functions import Lower

from controlplane.core.choices import AuthMode, DeploymentProvisioningState, ProvisioningState
from controlplane.core.models.base import TrackedResource


class BatchEndpoint(TrackedResource):
    workspace = models.ForeignKey(
        "weir.Workspace", on_delete=models.CASCADE, related_name="batch_endpoints"
    )
    auth_mode = models.CharField(max_length=16, choices=AuthMode.choices)
    description = models.TextField(null=True, blank=True)
    properties = models.JSONField(default=dict)
    # defaults.deploymentName: where an invocation naming no deployment goes.
    default_deployment = models.CharField(max_length=255, null=True, blank=True)
    provisioning_state = models.CharField(
        max_length=16, choices=ProvisioningState.choices, default=ProvisioningState.SUCCEEDED
    )

    class Meta:
        constraints = [
            models.UniqueConstraint("workspace", Lower("name"), name="batch_endpoint_unique_name")
        ]
        indexes = [models.Index(fields=["workspace", "created_at", "name"], name="batch_ep_list")]

    def __str__(self) -> str:
        return self.name

    @property
    def arm_id(self) -> str:
        return f"{self.workspace.arm_id}/batchEndpoints/{self.name}"


class OutputAction(models.TextChoices):
    APPEND_ROW = "AppendRow"
    SUMMARY_ONLY = "SummaryOnly"


class LoggingLevel(models.TextChoices):
    INFO = "Info"
    WARNING = "Warning"
    DEBUG = "Debug"


class BatchDeployment(TrackedResource):
    """A model (with its scoring script and environment, or an MLflow model with neither)
    and the settings its jobs run with."""

    endpoint = models.ForeignKey(
        "batch.BatchEndpoint", on_delete=models.CASCADE, related_name="deployments"
    )
    description = models.TextField(null=True, blank=True)
    properties = models.JSONField(default=dict)
    code_configuration = models.JSONField(null=True, blank=True)
    environment_id = models.CharField(max_length=1024, null=True, blank=True)
    environment_variables = models.JSONField(default=dict)
    # AssetReferenceBase as sent: {"referenceType": "Id", "assetId": ...}.
    model = models.JSONField(null=True, blank=True)
    compute = models.CharField(max_length=1024, null=True, blank=True)
    # DeploymentResourceConfiguration: instanceCount, instanceType, properties.
    resources = models.JSONField(default=dict)
    mini_batch_size = models.BigIntegerField(default=10)
    max_concurrency_per_instance = models.PositiveIntegerField(default=1)
    output_action = models.CharField(
        max_length=16, choices=OutputAction.choices, default=OutputAction.APPEND_ROW
    )
    output_file_name = models.CharField(max_length=255, default="predictions.csv")
    # BatchRetrySettings: maxRetries, timeout (ISO 8601).
    retry_settings = models.JSONField(default=dict)
    error_threshold = models.IntegerField(default=-1)
    logging_level = models.CharField(
        max_length=8, choices=LoggingLevel.choices, default=LoggingLevel.INFO
    )
    provisioning_state = models.CharField(
        max_length=16,
        choices=DeploymentProvisioningState.choices,
        default=DeploymentProvisioningState.SUCCEEDED,
    )

    class Meta:
        constraints = [
            models.UniqueConstraint("endpoint", Lower("name"), name="batch_deployment_unique_name")
        ]
        indexes = [models.Index(fields=["endpoint", "created_at", "name"], name="batch_dep_list")]

    def __str__(self) -> str:
        return self.name

    @property
    def arm_id(self) -> str:
        return f"{self.endpoint.arm_id}/deployments/{self.name}"


class JobStatus(models.TextChoices):
    """Azure's JobStatus values a batch job passes through."""

    QUEUED = "Queued"
    PREPARING = "Preparing"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    CANCEL_REQUESTED = "CancelRequested"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"


class BatchJob(models.Model):
    """One invocation of a batch endpoint. It outlives its endpoint and deployment (their
    names are kept); ``settings`` is what it runs with, fixed when it was invoked."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        "weir.Workspace", on_delete=models.CASCADE, related_name="batch_jobs"
    )
    name = models.CharField(max_length=255)
    endpoint = models.ForeignKey(
        "batch.BatchEndpoint", on_delete=models.SET_NULL, null=True, related_name="jobs"
    )
    deployment = models.ForeignKey(
        "batch.BatchDeployment", on_delete=models.SET_NULL, null=True, related_name="jobs"
    )
    endpoint_name = models.CharField(max_length=255)
    deployment_name = models.CharField(max_length=255)
    experiment_name = models.CharField(max_length=255)
    # The client's repeatability_request-id: the same id invokes once.
    request_id = models.CharField(max_length=255, null=True, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    # The run's settings: the deployment's, with what the invocation overrode, and the
    # assets resolved to versions (see controlplane.batch.services.job_settings).
    settings = models.JSONField(default=dict)
    # name -> {"jobInputType", "uri"}; the output as {"datastore", "path", "fileName"}.
    inputs = models.JSONField(default=dict)
    output = models.JSONField(default=dict)
    error = models.JSONField(null=True, blank=True)
    # Progress, kept by the worker running the job.
    mini_batches = models.PositiveIntegerField(default=0)
    mini_batches_done = models.PositiveIntegerField(default=0)
    mini_batches_failed = models.PositiveIntegerField(default=0)
    items_failed = models.PositiveIntegerField(default=0)
    created_by = models.CharField(max_length=255, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Pushed forward by the worker that runs the job; once it lapses the reconciler
    # enqueues the job again and the next run resumes from the ledger.
    lease_expires_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    # The run that owns the job now: each run claims it with a new id, and a run that finds
    # another id there stops, so two runs never score the same job.
    runner = models.UUIDField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint("workspace", Lower("name"), name="batch_job_unique_name"),
            models.UniqueConstraint(
                "workspace",
                "request_id",
                name="batch_job_unique_request",
                condition=models.Q(request_id__isnull=False),
            ),
        ]
        indexes = [
            models.Index(fields=["workspace", "created_at"], name="batch_job_list"),
            models.Index(fields=["status", "lease_expires_at"], name="batch_job_lease"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def arm_id(self) -> str:
        return f"{self.workspace.arm_id}/jobs/{self.name}"


class MiniBatchStatus(models.TextChoices):
    PENDING = "Pending"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class MiniBatch(models.Model):
    """One mini-batch of a job: its files, in index order. A mini-batch is committed
    (Succeeded, with its part file in place) once; a job run again after a crash scores
    only the mini-batches not committed."""

    job = models.ForeignKey("batch.BatchJob", on_delete=models.CASCADE, related_name="ledger")
    index = models.PositiveIntegerField()
    # Paths relative to the job's input folder.
    files = models.JSONField(default=list)
    # sha256 over the files' names and contents.
    input_hash = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=MiniBatchStatus.choices, default=MiniBatchStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    items = models.PositiveIntegerField(default=0)
    error = models.TextField(null=True, blank=True)
    seconds = models.FloatField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Incremental scoring: the job whose committed result this mini-batch reused.
    reused_from = models.CharField(max_length=255, null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint("job", "index", name="mini_batch_unique_index"),
        ]
        ordering = ["index"]
