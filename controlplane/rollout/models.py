"""A rollout: the candidate, the baseline, the plan, where the controller is in it, and every
decision it took with the numbers that drove it."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models.functions import Lower


class RolloutStatus(models.TextChoices):
    PENDING = "Pending"  # accepted; the controller has not set the first step's traffic yet
    RUNNING = "Running"  # at step ``current_step``: setting its traffic, then judging it
    PAUSED = "Paused"  # held where it is (traffic unchanged) until resumed or aborted
    SUCCEEDED = "Succeeded"  # every step passed; the candidate takes all the traffic
    ROLLED_BACK = "RolledBack"  # a gate failed or it was aborted; the baseline has it all
    FAILED = "Failed"  # the traffic could not be set (the endpoint or a deployment went away)


class Phase(models.TextChoices):
    """What the controller is doing within the current step."""

    APPLYING = "Applying"  # the step's traffic is being set (``operation`` runs)
    OBSERVING = "Observing"  # the traffic is set; the gates are judged since ``step_started_at``
    PROMOTING = "Promoting"  # the plan passed; the candidate's 100% is being set
    ROLLING_BACK = "RollingBack"  # the baseline's 100% is being set


class Rollout(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(
        "weir.OnlineEndpoint", on_delete=models.CASCADE, related_name="rollouts"
    )
    name = models.CharField(max_length=255)
    etag = models.UUIDField(default=uuid.uuid4)
    candidate = models.CharField(max_length=255)
    baseline = models.CharField(max_length=255)
    # The validated steps and default gates (controlplane.rollout.spec), camelCase as sent.
    steps = models.JSONField()
    gates = models.JSONField(default=dict)
    status = models.CharField(
        max_length=16, choices=RolloutStatus.choices, default=RolloutStatus.PENDING
    )
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.APPLYING)
    current_step = models.PositiveIntegerField(default=0)
    # When the current step's traffic took effect, and each deployment's counts then
    # (controlplane.metrics.fresh.snapshot): the step's window is what was added since.
    step_started_at = models.DateTimeField(null=True, blank=True)
    step_snapshot = models.JSONField(null=True, blank=True)
    # The endpoint operation setting the traffic, while the phase waits for it.
    operation = models.ForeignKey(
        "weir.Operation", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The latest reading of the current step's gates (rewritten every tick).
    reading = models.JSONField(null=True, blank=True)
    # Every decision, oldest first: time, step, event, window, gates vs thresholds, verdict.
    decisions = models.JSONField(default=list)
    # Asked for by a request, carried out by the controller (it alone moves traffic).
    abort_requested_by = models.CharField(max_length=255, null=True, blank=True)
    error = models.JSONField(null=True, blank=True)
    created_by = models.CharField(max_length=255, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    modified_by = models.CharField(max_length=255, default="")
    modified_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # The controller run that owns the rollout: each run is sent with a new id, and only the
    # run holding the current id acts (under the row's lock). It pushes the lease forward
    # every tick; once the lease lapses the reconciler gives the rollout a new run.
    runner = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint("endpoint", Lower("name"), name="rollout_unique_name"),
            # One rollout in progress per endpoint: two would fight over its traffic.
            models.UniqueConstraint(
                "endpoint",
                name="rollout_one_active_per_endpoint",
                condition=models.Q(status__in=["Pending", "Running", "Paused"]),
            ),
        ]
        indexes = [models.Index(fields=["status", "lease_expires_at"], name="rollout_lease")]

    def __str__(self) -> str:
        return self.name

    @property
    def arm_id(self) -> str:
        return f"{self.endpoint.arm_id}/rollouts/{self.name}"

    @property
    def step(self) -> dict | None:
        return self.steps[self.current_step] if self.current_step < len(self.steps) else None
