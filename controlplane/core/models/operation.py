"""Asynchronous operations: what clients poll through Azure-AsyncOperation and Location."""

import uuid

from django.db import models

from controlplane.core.choices import OperationKind, OperationStatus


class Operation(models.Model):
    """One long-running change to one resource.

    Status moves InProgress -> Succeeded | Failed | Canceled and never back
    (see ``controlplane.core.states.finish_operation``). ``lease_expires_at`` is pushed forward
    by the worker that runs it; once it lapses the reconciler enqueues the work again.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=32, choices=OperationKind.choices)
    status = models.CharField(
        max_length=16, choices=OperationStatus.choices, default=OperationStatus.IN_PROGRESS
    )
    subscription_id = models.CharField(max_length=64)
    location = models.CharField(max_length=64)
    # The ARM id of the target; it outlives the row of a deleted resource.
    resource_id = models.CharField(max_length=2048)
    endpoint = models.ForeignKey(
        "weir.OnlineEndpoint",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="operations",
    )
    deployment = models.ForeignKey(
        "weir.OnlineDeployment",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="operations",
    )
    percent_complete = models.FloatField(default=0.0)
    error = models.JSONField(null=True, blank=True)
    # HTTP status the Location URL answers once the operation has finished successfully.
    result_status = models.PositiveSmallIntegerField(default=200)
    created_by = models.CharField(max_length=255, default="")
    started_at = models.DateTimeField(auto_now_add=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["status", "lease_expires_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.id} {self.status}"
