"""One row per deployment and minute: what the routers counted for it (contracts.metrics)."""

from django.contrib.postgres.fields import ArrayField
from django.db import models


class DeploymentMinute(models.Model):
    deployment = models.ForeignKey(
        "weir.OnlineDeployment", on_delete=models.CASCADE, related_name="+"
    )
    minute = models.DateTimeField()  # its first second, UTC
    # Requests answered, by status class; 429s and 499s are in 4xx too.
    requests_2xx = models.BigIntegerField(default=0)
    requests_3xx = models.BigIntegerField(default=0)
    requests_4xx = models.BigIntegerField(default=0)
    requests_5xx = models.BigIntegerField(default=0)
    requests_429 = models.BigIntegerField(default=0)
    requests_499 = models.BigIntegerField(default=0)
    # Requests by latency (in the router, request to answer), one count per bucket of
    # contracts.metrics.LATENCY_BUCKETS and one for slower; and their sum in seconds.
    latency_buckets = ArrayField(models.BigIntegerField())
    latency_seconds = models.FloatField(default=0.0)
    # Time waited for a free replica by the requests that got one.
    queue_ms = models.FloatField(default=0.0)
    queue_count = models.BigIntegerField(default=0)
    # Copies of live requests mirrored to this deployment as a shadow: compared with the
    # live answer, of those the same, and not sent (too many in flight).
    mirrored = models.BigIntegerField(default=0)
    mirror_agreed = models.BigIntegerField(default=0)
    mirror_dropped = models.BigIntegerField(default=0)
    # The minute's highest, as sampled by the routers; null: not sampled (no router had
    # served the deployment yet).
    ready_replicas = models.IntegerField(null=True)
    queued = models.IntegerField(null=True)

    class Meta:
        constraints = [
            # Also the index of range queries by deployment.
            models.UniqueConstraint("deployment", "minute", name="deployment_minute_unique")
        ]
        indexes = [models.Index(fields=["minute"], name="deployment_minute_minute")]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.minute:%Y-%m-%dT%H:%M}Z"
