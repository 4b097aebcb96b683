"""Scale events: every autoscaler decision on a deployment, with its inputs and reason."""

import uuid

from django.db import models

from controlplane.core.choices import ScaleAction


class ScaleEvent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    deployment = models.ForeignKey(
        "weir.OnlineDeployment", on_delete=models.CASCADE, related_name="scale_events"
    )
    # When the router decided (its clock), and when the control plane recorded it.
    decided_at = models.DateTimeField()
    recorded_at = models.DateTimeField(auto_now_add=True)
    action = models.CharField(max_length=16, choices=ScaleAction.choices)
    from_instances = models.PositiveIntegerField()
    to_instances = models.PositiveIntegerField()
    # The inputs: (busy replicas + queued requests) / ready replicas over pollingInterval.
    utilization_percentage = models.FloatField()
    target_utilization_percentage = models.PositiveSmallIntegerField()
    busy_replicas = models.FloatField()
    queued_requests = models.FloatField()
    ready_replicas = models.PositiveIntegerField()
    min_instances = models.PositiveIntegerField()
    max_instances = models.PositiveIntegerField()
    reason = models.TextField()
    # Applied (an operation changes the instance count) or why it was not applied.
    outcome = models.TextField()
    operation = models.ForeignKey(
        "weir.Operation", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        indexes = [models.Index(fields=["deployment", "-decided_at"])]

    def __str__(self) -> str:
        return f"{self.action} {self.from_instances}->{self.to_instances}"
