"""What SDK v1 keeps beside Weir's own models: the assets it registers models from, and the
v1 fields of a model version registered through it."""

import uuid

from django.db import models


class Asset(models.Model):
    """An artifact prefix registered as an asset (POST assets): what ``aml://asset/<id>``
    names when a model is registered from it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("weir.Workspace", on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=255)
    # The artifact prefix, "{origin}/{container}/{path}", as the SDK names it.
    prefix = models.CharField(max_length=1024)
    description = models.TextField(null=True, blank=True)
    tags = models.JSONField(default=dict)
    properties = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=255, blank=True, default="")

    def __str__(self) -> str:
        return f"{self.name} ({self.id.hex})"


class ModelRegistration(models.Model):
    """The v1 fields of a model version registered through the v1 API; a version registered
    any other way has none, and v1 shows it with defaults."""

    version = models.OneToOneField(
        "weir.ModelVersion", on_delete=models.CASCADE, primary_key=True, related_name="v1"
    )
    asset = models.ForeignKey(Asset, on_delete=models.SET_NULL, null=True, related_name="+")
    mime_type = models.CharField(max_length=255, default="application/octet-stream")
    unpack = models.BooleanField(default=False)
    framework = models.CharField(max_length=255, null=True, blank=True)
    framework_version = models.CharField(max_length=255, null=True, blank=True)

    def __str__(self) -> str:
        return str(self.version_id)


class Service(models.Model):
    """What makes an online endpoint a v1 web service: its compute type as v1 names it (AKS,
    one deployment named after the service; AKSENDPOINT, versions as deployments) and the
    compute it was deployed to. An endpoint created through the v2 API has none, and v1 shows
    it as an AKSENDPOINT."""

    endpoint = models.OneToOneField(
        "weir.OnlineEndpoint", on_delete=models.CASCADE, primary_key=True, related_name="v1"
    )
    compute_type = models.CharField(max_length=16)
    namespace = models.CharField(max_length=63, null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.endpoint_id} ({self.compute_type})"


class ServiceVersion(models.Model):
    """A deployment's v1 version fields: the traffic share asked for (the default version
    takes what the others leave), whether it is the default, and Control or Treatment."""

    deployment = models.OneToOneField(
        "weir.OnlineDeployment", on_delete=models.CASCADE, primary_key=True, related_name="v1"
    )
    traffic_percentile = models.FloatField(default=0.0)
    is_default = models.BooleanField(default=False)
    version_type = models.CharField(max_length=16, default="Treatment")

    def __str__(self) -> str:
        return str(self.deployment_id)


class ServiceOperation(models.Model):
    """One v1 service change (Operation-Location): the Weir operations it started, and the
    traffic to set once they have all succeeded (a version gets traffic only when it is
    ready). A worker advances it (weir.advance_service_operation); the reconciler re-drives
    one whose worker died."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("weir.Workspace", on_delete=models.CASCADE, related_name="+")
    service_name = models.CharField(max_length=255)
    operation_type = models.CharField(max_length=32)
    # Who asked: the later steps (traffic) are made in their name.
    created_by = models.CharField(max_length=255, default="")
    state = models.CharField(max_length=16, default="Running")
    error = models.JSONField(null=True, blank=True)
    # Weir operation ids (strings) that must all succeed, in order of starting.
    waits_for = models.JSONField(default=list)
    # The endpoint traffic to apply when they have, or null.
    then_traffic = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "updated_at"])]

    def __str__(self) -> str:
        return f"{self.operation_type} {self.service_name} {self.state}"
