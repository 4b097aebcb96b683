"""Versioned assets: model, environment, code and data containers with their versions."""

from django.db import models
from django.db.models import Case, DecimalField, F, OuterRef, Subquery, When
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import Cast, Collate, Lower

from controlplane.core.models.base import ArmResource

# The modelType of MLflow models, as azure-ai-ml sends it (AssetTypes.MLFLOW_MODEL).
MLFLOW_MODEL = "mlflow_model"


class DataType(models.TextChoices):
    """What a data asset's URI names (Azure's DataType)."""

    URI_FILE = "uri_file"  # one file
    URI_FOLDER = "uri_folder"  # a directory
    MLTABLE = "mltable"  # a directory holding an MLTable file


# A version name that is a number ranks by its value, above every other name.
NUMERIC_VERSION = Case(
    When(
        name__regex=r"^[0-9]+$",
        then=Cast("name", DecimalField(max_digits=1000, decimal_places=0)),
    )
)


class AssetContainerQuerySet(models.QuerySet):
    def with_version_summary(self):
        """Annotate each container with its latest version and highest numeric version, in
        the same query (a list page costs the same whatever its length)."""
        versions = self.model.versions.rel.related_model.objects.filter(container=OuterRef("pk"))
        ranked = versions.annotate(number=NUMERIC_VERSION).order_by(
            F("number").desc(nulls_last=True), Collate("name", "C").desc()
        )
        return self.annotate(
            latest_version_name=Subquery(ranked.values("name")[:1]),
            highest_number=Subquery(ranked.values("number")[:1]),
        )


class AssetContainer(ArmResource):
    """A named asset in a workspace; its versions hold the content."""

    objects = AssetContainerQuerySet.as_manager()

    # The URL segment of this kind of asset: "models", "environments", "codes" or "data".
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

    def _summary(self):
        if not hasattr(self, "latest_version_name"):
            summary = type(self).objects.filter(pk=self.pk).with_version_summary().get()
            self.latest_version_name = summary.latest_version_name
            self.highest_number = summary.highest_number
        return self.latest_version_name, self.highest_number

    @property
    def latest_version(self) -> str | None:
        """The highest version: numeric versions compare as numbers and rank above others."""
        return self._summary()[0]

    @property
    def next_version(self) -> str:
        highest = self._summary()[1]
        return str(int(highest or 0) + 1)


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


def _container_indexes(prefix: str):
    """A workspace's containers in list order (by name)."""
    return [models.Index(fields=["workspace", "name"], name=f"{prefix}_list")]


def _version_indexes(prefix: str):
    """A container's versions in list order (by creation)."""
    return [models.Index(fields=["container", "created_at"], name=f"{prefix}_list")]


class ModelContainer(AssetContainer):
    collection = "models"

    class Meta:
        constraints = _container_constraint("model_container_unique_name")
        indexes = _container_indexes("model_container")


class ModelVersion(AssetVersion):
    container = models.ForeignKey(ModelContainer, on_delete=models.CASCADE, related_name="versions")
    model_uri = models.CharField(max_length=2048, null=True, blank=True)
    model_type = models.CharField(max_length=64, null=True, blank=True)
    flavors = models.JSONField(null=True, blank=True)
    job_name = models.CharField(max_length=255, null=True, blank=True)
    stage = models.CharField(max_length=64, null=True, blank=True)

    class Meta:
        constraints = _version_constraint("model_version_unique_name")
        indexes = _version_indexes("model_version")

    @property
    def is_mlflow(self) -> bool:
        """A folder saved by MLflow (modelType mlflow_model): deployable with no scoring
        script and no environment, as Azure's no-code deployment."""
        return (self.model_type or "").lower() == MLFLOW_MODEL


class EnvironmentContainer(AssetContainer):
    collection = "environments"

    class Meta:
        constraints = _container_constraint("environment_container_unique_name")
        indexes = _container_indexes("env_container")


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
        indexes = _version_indexes("env_version")


class CodeContainer(AssetContainer):
    collection = "codes"

    class Meta:
        constraints = _container_constraint("code_container_unique_name")
        indexes = _container_indexes("code_container")


class CodeVersion(AssetVersion):
    container = models.ForeignKey(CodeContainer, on_delete=models.CASCADE, related_name="versions")
    code_uri = models.CharField(max_length=2048, null=True, blank=True)

    class Meta:
        constraints = _version_constraint("code_version_unique_name")
        indexes = [
            *_version_indexes("code_version"),
            # Azure's SDK looks code up by content hash before every upload.
            models.Index(KeyTransform("hash_sha256", "properties"), name="code_version_hash"),
        ]


class DataContainer(AssetContainer):
    collection = "data"
    # Every version of a data asset has its container's type.
    data_type = models.CharField(max_length=16, choices=DataType.choices)

    class Meta:
        constraints = _container_constraint("data_container_unique_name")
        indexes = _container_indexes("data_container")


class DataVersion(AssetVersion):
    container = models.ForeignKey(DataContainer, on_delete=models.CASCADE, related_name="versions")
    data_type = models.CharField(max_length=16, choices=DataType.choices)
    data_uri = models.CharField(max_length=2048)
    # The URIs an MLTable file names (for lineage); None for the other types.
    referenced_uris = models.JSONField(null=True, blank=True)

    class Meta:
        constraints = _version_constraint("data_version_unique_name")
        indexes = _version_indexes("data_version")
