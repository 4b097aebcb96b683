"""The audit log: one append-only row per write, role change, token event or sign-in.

Postgres refuses UPDATE, DELETE and TRUNCATE of the table (a trigger, migration 0002), so the
application can add rows and read them, never change or remove one. Nothing here is a foreign
key: a record outlives the principal, token or resource it names.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class Outcome(models.TextChoices):
    SUCCEEDED = "Succeeded"
    # The request was taken and started an operation (201/200 with Azure-AsyncOperation, or
    # 202): the operation's own outcome is its status resource, not a second audit row.
    ACCEPTED = "Accepted"
    FAILED = "Failed"


class AuditRecord(models.Model):
    # The row's order is the log's order: newest first is id descending, and a page's
    # continuation token is the last id it held (stable while rows are added).
    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    time = models.DateTimeField(default=timezone.now, db_index=True)
    # Who: a name, and for a principal of this install its object id and kind (User,
    # ServicePrincipal); "Operator" is someone at the server's shell (manage.py).
    principal_name = models.CharField(max_length=255, blank=True, default="")
    principal_id = models.UUIDField(null=True, blank=True, db_index=True)
    principal_type = models.CharField(max_length=32, blank=True, default="")
    # What: Azure's operation name (Microsoft.MachineLearningServices/workspaces/write) and
    # the ARM id it acted on, as given and lower-cased for scope filters.
    action = models.CharField(max_length=512, db_index=True)
    resource_id = models.CharField(max_length=2048)
    resource_key = models.CharField(max_length=2048)
    # The request: x-ms-request-id, the caller's x-ms-correlation-request-id, method, address.
    request_id = models.CharField(max_length=64, blank=True, default="")
    correlation_id = models.CharField(max_length=64, blank=True, default="")
    method = models.CharField(max_length=8, blank=True, default="")
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    # The outcome: the HTTP status (None for an event outside a request) and its meaning.
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    # {"properties.x": {"before": ..., "after": ...}, "tags.y": {...}}, secrets redacted.
    changes = models.JSONField(default=dict, blank=True)
    # What else the event says: a failure's error code and target, a token's name and prefix.
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["resource_key"],
                name="audit_resource_prefix",
                opclasses=["varchar_pattern_ops"],
            )
        ]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%dT%H:%M:%SZ} {self.principal_name} {self.action} {self.outcome}"
