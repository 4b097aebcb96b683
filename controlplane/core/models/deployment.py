"""Online deployments: a model, code and environment served by instanceCount replicas."""

from django.db import models
from django.db.models.functions import Lower

from controlplane.core.choices import (
    DeploymentProvisioningState,
    EndpointComputeType,
    PublicNetworkAccess,
)
from controlplane.core.models.base import TrackedResource


class OnlineDeployment(TrackedResource):
    endpoint = models.ForeignKey(
        "weir.OnlineEndpoint", on_delete=models.CASCADE, related_name="deployments"
    )
    sku = models.JSONField(null=True, blank=True)
    # sku.capacity, the number of replicas.
    instance_count = models.PositiveIntegerField(default=1)
    endpoint_compute_type = models.CharField(max_length=16, choices=EndpointComputeType.choices)
    description = models.TextField(null=True, blank=True)
    properties = models.JSONField(default=dict)
    code_configuration = models.JSONField(null=True, blank=True)
    environment_id = models.CharField(max_length=1024, null=True, blank=True)
    environment_variables = models.JSONField(default=dict)
    model = models.CharField(max_length=1024, null=True, blank=True)
    model_mount_path = models.CharField(max_length=1024, null=True, blank=True)
    instance_type = models.CharField(max_length=64, null=True, blank=True)
    app_insights_enabled = models.BooleanField(default=False)
    egress_public_network_access = models.CharField(
        max_length=16, choices=PublicNetworkAccess.choices, default=PublicNetworkAccess.ENABLED
    )
    data_collector = models.JSONField(null=True, blank=True)
    liveness_probe = models.JSONField(null=True, blank=True)
    readiness_probe = models.JSONField(null=True, blank=True)
    request_settings = models.JSONField(null=True, blank=True)
    scale_settings = models.JSONField(null=True, blank=True)
    container_resource_requirements = models.JSONField(null=True, blank=True)
    # What the router serves for this deployment (contracts.routing.DeploymentRoute, wire
    # form): its settings as its last operation applied them and the ready replica addresses
    # last observed. Written by workers only; the routing table is built from it.
    route = models.JSONField(null=True, blank=True)
    provisioning_state = models.CharField(
        max_length=16,
        choices=DeploymentProvisioningState.choices,
        default=DeploymentProvisioningState.CREATING,
    )

    class Meta:
        constraints = [
            models.UniqueConstraint("endpoint", Lower("name"), name="online_deployment_unique_name")
        ]
        # In list order, so a deep page does not sort the whole collection.
        indexes = [models.Index(fields=["endpoint", "created_at", "name"], name="deployment_list")]

    def __str__(self) -> str:
        return self.name

    @property
    def arm_id(self) -> str:
        return f"{self.endpoint.arm_id}/deployments/{self.name}"
