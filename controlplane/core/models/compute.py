"""Computes attached to a workspace: a Kubernetes cluster (a kubeconfig context) and the
namespace deployments go to."""

from django.db import models
from django.db.models.functions import Lower

from controlplane.core.choices import ProvisioningState
from controlplane.core.models.base import TrackedResource


class Compute(TrackedResource):
    workspace = models.ForeignKey(
        "weir.Workspace", on_delete=models.CASCADE, related_name="computes"
    )
    compute_type = models.CharField(max_length=32)
    description = models.TextField(null=True, blank=True)
    # Azure's resourceId names the cluster; here it names the kubeconfig context
    # (WEIR_KUBECONFIG), empty for the cluster Weir runs in.
    resource_id = models.CharField(max_length=1024, null=True, blank=True)
    namespace = models.CharField(max_length=63, default="default")
    # The rest of properties.properties (defaultInstanceType, instanceTypes), as sent.
    properties = models.JSONField(default=dict)
    provisioning_state = models.CharField(
        max_length=16, choices=ProvisioningState.choices, default=ProvisioningState.SUCCEEDED
    )

    class Meta:
        constraints = [
            models.UniqueConstraint("workspace", Lower("name"), name="compute_unique_name")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def arm_id(self) -> str:
        return f"{self.workspace.arm_id}/computes/{self.name}"
