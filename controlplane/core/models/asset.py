"""Versioned assets: model, environment and code containers with their versions."""

from django.db import models
from django.db.models.functions import Lower

from controlplane.core.models.base import ArmResource


class AssetContainer(ArmResource):
    """A named asset in a workspace; its versions hold the content."""

    # The URL segment of this kind of asset: "models", "environments" or "codes".
    collection = ""

    workspace = models.ForeignKey("weir.Workspace", on_delete=models.CASCADE, related_name="+")
    description = models.TextField(null=True, blank=True)
    tags = models.JSONField(default=dict)
    properties = models.JSONField(default=dict)
    is_archived = models.BooleanField(default=False)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name

    @property
    def arm_id(self) -> str:
        return f"{self.workspace.arm_id}/{self.collection}/{self.name}"

    def version_names(self) -> list[str]:
        return list(self.versions.values_list("name", flat=True))

    @property
    def latest_version(self) -> str | None:
        return latest_of(self.version_names())

    @property
    def next_version(self) -> str:
        numeric = [int(v) for v in self.version_names() if v.isdigit()]
        return str(max(numeric, default=0) + 1)


def latest_of(versions: list[str]) -> str | None:
    """The highest version: numeric versions compare as numbers and rank above others."""
    if not versions:
        return None
    return max(versions, key=lambda v: (v.isdigit(), int(v) if v.isdigit() else 0, v))


class AssetVersion(ArmResource):
    """One immutable version of an asset; only tags, description, stage and archive change."""

    description = models.TextField(null=True, blank=True)
    tags = models.JSONField(default=dict)
    properties = models.JSONField(default=dict)
    is_anonymous = models.BooleanField(default=False)
    is_archived = models.BooleanField(default=False)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.container.name}:{self.name}"

    @property
    def arm_id(self) -> str:
        return f"{self.container.arm_id}/versions/{self.name}"


def _container_constraint(name: str):
    return [models.UniqueConstraint("workspace", Lower("name"), name=name)]


def _version_constraint(name: str):
    return [models.UniqueConstraint("container", Lower("name"), name=name)]


class ModelContainer(AssetContainer):
    collection = "models"

    class Meta:
        constraints = _container_constraint("model_container_unique_name")


class ModelVersion(AssetVersion):
    container = models.ForeignKey(ModelContainer, on_delete=models.CASCADE, related_name="versions")
    model_uri = models.CharField(max_length=2048, null=True, blank=True)
    model_type = models.CharField(max_length=64, null=True, blank=True)
    flavors = models.JSONField(null=True, blank=True)
    job_name = models.CharField(max_length=255, null=True, blank=True)
    stage = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        constraints = _version_constraint("model_version_unique_name")


class EnvironmentContainer(AssetContainer):
    collection = "environments"

    class Meta:
        constraints = _container_constraint("environment_container_unique_name")


class EnvironmentVersion(AssetVersion):
    container = models.ForeignKey(
        EnvironmentContainer, on_delete=models.CASCADE, related_name="versions"
    )
    image = models.CharField(max_length=1024, null=True, blank=True)
    conda_file = models.TextField(null=True, blank=True)
    build = models.JSONField(null=True, blank=True)
    inference_config = models.JSONField(null=True, blank=True)
    os_type = models.CharField(max_length=16, default="Linux")
    auto_rebuild = models.CharField(max_length=32, default="Disabled")
    stage = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        constraints = _version_constraint("environment_version_unique_name")


class CodeContainer(AssetContainer):
    collection = "codes"

    class Meta:
        constraints = _container_constraint("code_container_unique_name")


class CodeVersion(AssetVersion):
    container = models.ForeignKey(CodeContainer, on_delete=models.CASCADE, related_name="versions")
    code_uri = models.CharField(max_length=2048, null=True, blank=True)

    class Meta:
        constraints = _version_constraint("code_version_unique_name")
