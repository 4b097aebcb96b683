"""Online endpoints: one scoring URI, several deployments, traffic and mirror weights."""

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from controlplane.core.choices import AuthMode, ProvisioningState, PublicNetworkAccess
from controlplane.core.crypto import EncryptedTextField
from controlplane.core.models.base import TrackedResource


class OnlineEndpoint(TrackedResource):
    workspace = models.ForeignKey(
        "weir.Workspace", on_delete=models.CASCADE, related_name="online_endpoints"
    )
    auth_mode = models.CharField(max_length=16, choices=AuthMode.choices)
    description = models.TextField(null=True, blank=True)
    properties = models.JSONField(default=dict)
    traffic = models.JSONField(default=dict)
    mirror_traffic = models.JSONField(default=dict)
    # The weights the router serves, copied from traffic / mirror_traffic by the operation
    # that applies them in the same transaction that makes it Succeeded.
    applied_traffic = models.JSONField(default=dict)
    applied_mirror_traffic = models.JSONField(default=dict)
    # Beyond Azure, how the router compares a shadow's answers with the live ones
    # ({"tolerance", "path"}, contracts.comparison); null: the default rule. Applied with
    # the weights.
    mirror_comparison = models.JSONField(null=True, blank=True, default=None)
    applied_mirror_comparison = models.JSONField(null=True, blank=True, default=None)
    public_network_access = models.CharField(
        max_length=16, choices=PublicNetworkAccess.choices, default=PublicNetworkAccess.ENABLED
    )
    compute = models.CharField(max_length=1024, null=True, blank=True)
    # {endpoint}.{workspace}.{domain}: the router finds the endpoint by it, so it is unique
    # across the installation, as Azure's endpoint names are unique in a region.
    scoring_host = models.CharField(max_length=255, unique=True, null=True)
    # Scoring keys: Fernet tokens in the database, never returned by GET (only listKeys).
    primary_key = EncryptedTextField()
    secondary_key = EncryptedTextField()
    # Beyond Azure, scoring quotas by credential (primaryKey, secondaryKey, amlToken):
    # {credential: {requestsPerSecond, burst, maxConcurrentRequests}}; none: no limit.
    key_quotas = models.JSONField(default=dict)
    # Keys replaced with an overlap window, accepted until it ends: SHA-256 digests only,
    # [{"digest", "credential", "expiresAt" (Unix time)}].
    retired_keys = models.JSONField(default=list)
    provisioning_state = models.CharField(
        max_length=16, choices=ProvisioningState.choices, default=ProvisioningState.CREATING
    )

    class Meta:
        constraints = [
            models.UniqueConstraint("workspace", Lower("name"), name="online_endpoint_unique_name")
        ]
        # In list order, so a deep page does not sort the whole collection.
        indexes = [models.Index(fields=["workspace", "created_at", "name"], name="endpoint_list")]

    def __str__(self) -> str:
        return self.name

    @property
    def arm_id(self) -> str:
        return f"{self.workspace.arm_id}/onlineEndpoints/{self.name}"

    @property
    def token_audience(self) -> str:
        """The ``aud`` of its AMLToken scoring tokens."""
        return self.arm_id.lower()


def scoring_host(endpoint_name: str, workspace_name: str) -> str:
    return f"{endpoint_name}.{workspace_name}.{settings.WEIR_SCORING_DOMAIN}".lower()
