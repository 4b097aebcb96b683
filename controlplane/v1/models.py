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
