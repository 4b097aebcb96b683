"""Asset writes: containers and their immutable versions (synchronous)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from controlplane.arm.errors import ArmError, bad_request
from controlplane.blobstore import storage
from controlplane.core.models import (
    CodeContainer,
    CodeVersion,
    DataContainer,
    DataVersion,
    EnvironmentContainer,
    EnvironmentVersion,
    ModelContainer,
    ModelVersion,
)
from controlplane.core.serializers import asset as s
from controlplane.core.services.rows import (
    Fixed,
    create_or_conflict,
    lock,
    save_changes,
    upsert,
)

CONTAINER_FIELDS = ("description", "tags", "properties", "is_archived")
BASE_VERSION_FIELDS = ("description", "tags", "properties", "is_archived", "is_anonymous")
# Version fields a PUT may change once the version exists; any other change is a conflict.
MUTABLE_VERSION_FIELDS = frozenset({"description", "tags", "properties", "is_archived", "stage"})


@dataclass(frozen=True)
class AssetKind:
    label: str
    container_model: type
    version_model: type
    container_serializer: type
    version_serializer: type
    content_fields: tuple[str, ...]
    # The field holding the URI of the version's bytes, which must be in Weir's storage.
    uri_field: str | None = None
    # Fields a container and each of its versions share: set when the container is created
    # (by its own PUT or its first version's), fixed after, and every version must agree.
    shared_fields: tuple[str, ...] = ()
    # The query parameter of a version list that filters by tags, as Azure names it.
    tags_parameter: str = "tags"

    @property
    def container_fields(self) -> tuple[str, ...]:
        return CONTAINER_FIELDS + self.shared_fields

    @property
    def version_fields(self) -> tuple[str, ...]:
        return BASE_VERSION_FIELDS + self.content_fields


MODEL = AssetKind(
    "Model",
    ModelContainer,
    ModelVersion,
    s.ModelContainerSerializer,
    s.ModelVersionSerializer,
    ("model_uri", "model_type", "flavors", "job_name", "stage"),
    uri_field="model_uri",
)
ENVIRONMENT = AssetKind(
    "Environment",
    EnvironmentContainer,
    EnvironmentVersion,
    s.EnvironmentContainerSerializer,
    s.EnvironmentVersionSerializer,
    ("image", "conda_file", "build", "inference_config", "os_type", "auto_rebuild", "stage"),
)
CODE = AssetKind(
    "Code",
    CodeContainer,
    CodeVersion,
    s.CodeContainerSerializer,
    s.CodeVersionSerializer,
    ("code_uri",),
    uri_field="code_uri",
)
DATA = AssetKind(
    "Data",
    DataContainer,
    DataVersion,
    s.DataContainerSerializer,
    s.DataVersionSerializer,
    ("data_type", "data_uri", "referenced_uris"),
    uri_field="data_uri",
    shared_fields=("data_type",),
    tags_parameter="$tags",
)
KINDS = {kind.container_model.collection: kind for kind in (MODEL, ENVIRONMENT, CODE, DATA)}


def _values(data: dict, fields) -> dict:
    values = {field: data.get(field) for field in fields}
    for field in ("tags", "properties"):
        values[field] = values[field] or {}
    return values


def find_container(kind: AssetKind, workspace, name: str):
    return kind.container_model.objects.filter(
        workspace=workspace, name__lower=name.lower()
    ).first()


def find_version(container, name: str):
    return container.versions.filter(name__lower=name.lower()).first()


def put_container(kind: AssetKind, workspace, name: str, data: dict, principal: str, check):
    """Create or update a container. Returns (container, created, None)."""
    values = _values(data, kind.container_fields)
    return upsert(
        kind.container_model.objects.filter(workspace=workspace, name__lower=name.lower()),
        check,
        principal,
        {field: value for field, value in values.items() if field not in kind.shared_fields},
        new=lambda: {"workspace": workspace, "name": name},
        fixed=tuple(Fixed(f, values[f], TARGETS[f]) for f in kind.shared_fields),
    )


def put_version(
    kind: AssetKind, workspace, name: str, version_name: str, data: dict, principal: str, check
):
    """Register a version (creating its container, as Azure does), or change its metadata.
    A PUT that changes its content is 409: versions are immutable. Returns (version,
    created, None).
    """

    def new() -> dict:
        fields = {"container": container, "name": version_name}
        if kind.uri_field and values.get(kind.uri_field):
            uri = check_content(workspace, values[kind.uri_field], kind.uri_field)
            fields[kind.uri_field] = uri
        return fields

    def update(version, values: dict) -> None:
        changed = {f for f, v in values.items() if getattr(version, f) != v}
        immutable = sorted(changed - MUTABLE_VERSION_FIELDS)
        if immutable:
            raise ArmError(
                409,
                "Conflict",
                f"{kind.label} version '{container.name}:{version.name}' already exists with "
                f"different content ({', '.join(immutable)}); versions are immutable. "
                "Register a new version instead.",
                "version",
            )
        save_changes(version, principal, values)

    values = _values(data, kind.version_fields)
    shared = {field: values[field] for field in kind.shared_fields}
    with transaction.atomic():
        container = (
            kind.container_model.objects.select_for_update()
            .filter(workspace=workspace, name__lower=name.lower())
            .first()
        ) or create_or_conflict(
            kind.container_model,
            workspace=workspace,
            name=name,
            created_by=principal,
            modified_by=principal,
            **shared,
        )
        for field, value in shared.items():
            if getattr(container, field) != value:
                raise bad_request(
                    f"{kind.label} '{container.name}' holds {getattr(container, field)} "
                    f"versions, not {value}.",
                    TARGETS[field],
                )
        return upsert(
            container.versions.filter(name__lower=version_name.lower()),
            check,
            principal,
            values,
            new=new,
            update=update,
        )


def delete(row, principal: str, check) -> None:
    """DELETE of a container (with its versions) or a version."""
    with transaction.atomic():
        lock(row, check).delete()


# Where a refused field is in the request body.
TARGETS = {
    "code_uri": "properties.codeUri",
    "model_uri": "properties.modelUri",
    "data_uri": "properties.dataUri",
    "data_type": "properties.dataType",
}


def check_content(workspace, uri: str, field: str) -> str:
    """The URI must name a blob, or a directory holding blobs, in the workspace's storage:
    a version never points at an upload that did not finish. A path on this machine is
    copied in first. Returns the URI to store."""
    target = TARGETS[field]
    try:
        if storage.is_local_reference(uri):
            uri = storage.import_local(workspace, uri)
        location = storage.resolve(workspace, uri)
    except ValueError as exc:
        raise bad_request(str(exc), target) from None
    if not storage.exists(location):
        raise bad_request(f"nothing has been uploaded at '{uri}'", target)
    return uri
