"""Workspaces: the ARM parent of endpoints and assets."""

import uuid

from django.db import models
from django.db.models.functions import Lower

from controlplane.core.choices import ProvisioningState
from controlplane.core.models.base import TrackedResource


class Workspace(TrackedResource):
    subscription_id = models.CharField(max_length=64)
    resource_group = models.CharField(max_length=90)
    workspace_id = models.UUIDField(default=uuid.uuid4, editable=False)
    sku = models.JSONField(null=True, blank=True)
    friendly_name = models.CharField(max_length=255, null=True, blank=True)
    description = models.TextField(null=True, blank=True)
    # The remaining writable Workspace properties (storageAccount, keyVault, ...), kept as sent.
    settings = models.JSONField(default=dict)
    provisioning_state = models.CharField(
        max_length=16, choices=ProvisioningState.choices, default=ProvisioningState.SUCCEEDED
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                Lower("subscription_id"),
                Lower("resource_group"),
                Lower("name"),
                name="workspace_unique_name",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.name}"
        )
