"""SDK v1's artifacts, assets and models over Weir's blob store and model versions.

An artifact ``{origin}/{container}/{path}`` is the blob ``artifacts/{origin}/{container}/{path}``
in the workspace's default container (apart from the ``LocalUpload/{id}`` directories of v2
uploads, so neither API can write into the other's). A model registered from an asset is a
normal model version whose modelUri is that artifact prefix in the default datastore.

A model version registered any other way (the v2 API) has no asset: v1 names it
``aml://asset/{version id}``, an asset over the read-only artifacts
``ModelVersion/{version id}/{name}/...``, which are the blobs under its modelUri. So v1's
``Model.download`` reads every model the workspace holds, and no v1 write reaches v2's blobs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import jsonpatch
import jsonpointer
from django.db import models, transaction

from controlplane.arm.errors import ArmError, Gone
from controlplane.blobstore import storage
from controlplane.blobstore.models import Blob, StorageAccount
from controlplane.blobstore.paths import UnsafePath, check_blob_name
from controlplane.core.models import ModelContainer, ModelVersion
from controlplane.core.models.asset import NUMERIC_VERSION
from controlplane.core.services import asset as asset_service
from controlplane.v1.models import Asset, ModelRegistration

ARTIFACT_ROOT = "artifacts"
ASSET_URL = "aml://asset/"
# The artifact origin of model versions registered without v1 (read only).
MODEL_ORIGIN = "ModelVersion"
# Artifacts per page of a prefix listing; the SDK follows continuationToken.
ARTIFACT_PAGE = 100


class V1Error(Exception):
    """A refusal in the shape the v1 services answer with (ModelErrorResponse)."""

    def __init__(self, status_code: int, code: str, message: str):
        super().__init__(message)
        self.status_code, self.code, self.message = status_code, code, message


def bad_request(message: str) -> V1Error:
    return V1Error(400, "BadRequest", message)


# -- artifacts


def artifact_blob_name(origin: str, container: str, path: str) -> str:
    """The blob an artifact is stored as; raises V1Error for a name that is not safe."""
    for segment, what in ((origin, "origin"), (container, "container")):
        if not segment or "/" in segment:
            raise bad_request(f"The artifact {what} '{segment}' must be one path segment.")
    name = f"{ARTIFACT_ROOT}/{origin}/{container}/{path}"
    try:
        return check_blob_name(name)
    except UnsafePath as exc:
        raise bad_request(str(exc)) from None


def create_empty_artifacts(workspace, origin: str, container: str, paths: list[str]) -> dict:
    """BatchArtifactContentInformationDto: for each path, the artifact and a SAS URL to write
    its blob. A path already stored is an error for that path (artifacts are written once)."""
    if origin == MODEL_ORIGIN:
        raise bad_request(f"The artifact origin '{MODEL_ORIGIN}' is read only.")
    account = storage.account_for(workspace)
    blob_container = account.default_container
    artifacts, content, errors = {}, {}, {}
    for path in paths:
        name = artifact_blob_name(origin, container, path)
        artifact = {
            "artifactId": f"{origin}/{container}/{path}",
            "origin": origin,
            "container": container,
            "path": path,
        }
        if Blob.objects.filter(account=account, container=blob_container, name=name).exists():
            errors[path] = {
                "error": {
                    "code": "AlreadyExists",
                    "message": f"Artifact '{origin}/{container}/{path}' already exists.",
                }
            }
            continue
        token = storage.sas_token(account, blob_container, name, "rw", "b")
        artifacts[path] = artifact
        content[path] = {
            **artifact,
            "contentUri": f"{host_style_url(account, blob_container, name)}?{token}",
        }
    return {"artifacts": artifacts, "artifactContentInformation": content, "errors": errors}


def host_style_url(account, container: str, name: str) -> str:
    """The blob's URL at ``{account}.blob.{blob host}``: SDK v1 takes the account, and the
    storage suffix it connects to, from the host name of the URL it is given."""
    url = storage.blob_url(account, container, name)
    scheme, rest = url.split("://", 1)
    host, path = rest.split("/", 1)
    path = path.removeprefix(f"{account.name}/")
    return f"{scheme}://{account.name}.blob.{host}/{path}"


@dataclass(frozen=True)
class ArtifactScope:
    """Where the artifacts of one origin and container are stored: blob ``{root}{path}`` is
    artifact ``{path}``."""

    account: StorageAccount
    blob_container: str
    root: str
    # The one file or folder the scope shows (a model version's), or None for all of it.
    only: str | None = None

    def shows(self, path: str) -> bool:
        return self.only is None or path == self.only or path.startswith(self.only + "/")


def artifact_scope(workspace, origin: str, container: str) -> ArtifactScope:
    """The blobs behind ``{origin}/{container}``; raises V1Error when there are none to name."""
    account = storage.account_for(workspace)
    if origin != MODEL_ORIGIN:
        # The blob name of an artifact "x" there, less the "x" (checking both segments).
        root = artifact_blob_name(origin, container, "x").removesuffix("x")
        return ArtifactScope(account, account.default_container, root)
    version = v2_model_version(workspace, container)
    location = version_location(workspace, version) if version else None
    if location is None:
        raise artifact_not_found(f"{origin}/{container}")
    # The artifact path of the version's file or folder is its last segment.
    parent, _, item = location.path.rstrip("/").rpartition("/")
    root = f"{parent}/" if parent else ""
    return ArtifactScope(location.account, location.container, root, only=item)


def artifact_not_found(artifact_id: str) -> V1Error:
    return V1Error(404, "NotFound", f"No artifact '{artifact_id}' was found.")


def artifact_content(workspace, origin: str, container: str, path: str) -> dict:
    """ArtifactContentInformationDto: one artifact and a SAS URL to read it."""
    scope = artifact_scope(workspace, origin, container)
    blob = Blob.objects.filter(
        account=scope.account, container=scope.blob_container, name=scope.root + path
    ).first()
    if blob is None or not scope.shows(path):
        raise artifact_not_found(f"{origin}/{container}/{path}")
    return content_information(scope, origin, container, blob.name)


def artifacts_under(workspace, origin: str, container: str, prefix: str, after: str | None) -> dict:
    """PaginatedArtifactContentInformationDto: the artifacts at or under ``prefix`` (a file,
    or a folder's path segments: ``model`` is not ``model2``), in path order, a page at a
    time; ``continuationToken`` is the last path of the page when more follow."""
    scope = artifact_scope(workspace, origin, container)
    if not scope.shows(prefix.rstrip("/")):
        return {"value": [], "continuationToken": None}
    name = scope.root + prefix.rstrip("/")
    blobs = Blob.objects.filter(account=scope.account, container=scope.blob_container).filter(
        models.Q(name=name) | models.Q(name__startswith=name + "/")
    )
    if after:
        blobs = blobs.filter(name__gt=scope.root + after)
    page = list(blobs.order_by("name").values_list("name", flat=True)[: ARTIFACT_PAGE + 1])
    more = len(page) > ARTIFACT_PAGE
    page = page[:ARTIFACT_PAGE]
    return {
        "value": [content_information(scope, origin, container, n) for n in page],
        "continuationToken": page[-1].removeprefix(scope.root) if more else None,
    }


def content_information(scope: ArtifactScope, origin: str, container: str, name: str) -> dict:
    token = storage.sas_token(scope.account, scope.blob_container, name, "r", "b")
    return {
        "contentUri": f"{host_style_url(scope.account, scope.blob_container, name)}?{token}",
        "origin": origin,
        "container": container,
        "path": name.removeprefix(scope.root),
    }


# -- assets


def create_asset(workspace, data: dict, principal: str) -> Asset:
    """POST assets: one artifact prefix that holds uploaded artifacts."""
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise bad_request("An asset needs a name of 1 to 255 characters.")
    artifacts = data.get("artifacts")
    if not isinstance(artifacts, list) or len(artifacts) != 1 or not isinstance(artifacts[0], dict):
        raise bad_request("An asset names exactly one artifact prefix (artifacts: [{prefix}]).")
    prefix = artifacts[0].get("prefix")
    if not isinstance(prefix, str) or prefix.count("/") < 2:
        raise bad_request("An artifact prefix reads '{origin}/{container}/{path}'.")
    origin, container, path = prefix.split("/", 2)
    location = prefix_location(workspace, artifact_blob_name(origin, container, path.rstrip("/")))
    if not storage.exists(location):
        raise bad_request(f"No artifact has been uploaded under '{prefix}'.")
    return Asset.objects.create(
        workspace=workspace,
        name=name,
        prefix=prefix.rstrip("/"),
        description=data.get("description"),
        tags=string_map(data.get("kvTags"), "kvTags"),
        properties=string_map(data.get("properties"), "properties"),
        created_by=principal,
    )


def prefix_location(workspace, blob_name: str) -> storage.BlobLocation:
    account = storage.account_for(workspace)
    return storage.BlobLocation(account, account.default_container, blob_name)


def asset_dto(asset: Asset) -> dict:
    return {
        "id": asset.id.hex,
        "name": asset.name,
        "type": None,
        "description": asset.description,
        "artifacts": [{"id": None, "prefix": asset.prefix}],
        "kvTags": asset.tags,
        "properties": asset.properties,
        "runid": None,
        "meta": None,
        "createdTime": asset.created_at.isoformat(),
    }


def v2_model_version(workspace, version_id: str) -> ModelVersion | None:
    """A model version by the id v1 names its asset with (hex digits)."""
    try:
        key = uuid.UUID(hex=version_id)
    except ValueError:
        return None
    return (
        ModelVersion.objects.filter(container__workspace=workspace, id=key)
        .select_related("container")
        .first()
    )


def version_location(workspace, version: ModelVersion) -> storage.BlobLocation | None:
    """The blob or folder a version's modelUri names in the workspace's storage, if any."""
    if not version.model_uri:
        return None
    try:
        return storage.resolve(workspace, version.model_uri)
    except ValueError:
        return None


def asset_by_id(workspace, asset_id: str) -> dict:
    """GET assets/{id}: a registered asset, or the one v1 names a model version by that was
    registered without v1. Raises V1Error 404 for neither."""
    asset = find_asset(workspace, ASSET_URL + asset_id)
    if asset is not None:
        return asset_dto(asset)
    version = v2_model_version(workspace, asset_id)
    if version is None:
        raise V1Error(404, "AssetNotFound", f"Asset '{asset_id}' was not found.")
    location = version_location(workspace, version)
    artifacts = []
    if location is not None:
        item = location.path.rstrip("/").rpartition("/")[2]
        artifacts = [{"id": None, "prefix": f"{MODEL_ORIGIN}/{version.id.hex}/{item}"}]
    return {
        "id": version.id.hex,
        "name": version.container.name,
        "type": None,
        "description": version.description,
        "artifacts": artifacts,
        "kvTags": {},
        "properties": {},
        "runid": None,
        "meta": None,
        "createdTime": version.created_at.isoformat(),
    }


def find_asset(workspace, url: str) -> Asset | None:
    try:
        asset_id = uuid.UUID(url.removeprefix(ASSET_URL))
    except ValueError:
        return None
    return Asset.objects.filter(workspace=workspace, id=asset_id).first()


def string_map(value, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise bad_request(f"{field} maps names to strings.")
    return value


# -- models


def register_model(workspace, data: dict, principal: str) -> ModelVersion:
    """POST models: the asset ``url`` names becomes the next version of model ``name``."""
    name = data.get("name")
    url = data.get("url")
    if not isinstance(name, str) or not name:
        raise bad_request("A model needs a name.")
    if not isinstance(url, str) or not url.startswith(ASSET_URL):
        raise bad_request(f"A model's url names a registered asset ({ASSET_URL}<id>).")
    asset = find_asset(workspace, url)
    if asset is None:
        raise bad_request(f"Asset '{url.removeprefix(ASSET_URL)}' does not exist.")
    values = {
        "description": data.get("description"),
        "tags": string_map(data.get("kvTags"), "kvTags"),
        "properties": string_map(data.get("properties"), "properties"),
        "model_uri": asset_model_uri(workspace, asset),
        "model_type": "custom_model",
        "is_archived": False,
        "is_anonymous": False,
    }
    with transaction.atomic():
        # The container's lock serializes registrations of one name: each gets the next
        # version.
        container = (
            ModelContainer.objects.select_for_update()
            .filter(workspace=workspace, name__lower=name.lower())
            .first()
        )
        next_version = container.next_version if container else "1"
        try:
            version, _, _ = asset_service.put_version(
                asset_service.MODEL, workspace, name, next_version, values, principal, must_be_new
            )
        except ArmError as exc:
            raise V1Error(exc.status_code, exc.code, exc.message) from None
        ModelRegistration.objects.create(
            version=version,
            asset=asset,
            mime_type=data.get("mimeType") or "application/octet-stream",
            unpack=bool(data.get("unpack")),
            framework=data.get("framework"),
            framework_version=data.get("frameworkVersion"),
        )
    return version


def must_be_new(current_etag: str | None) -> None:
    if current_etag is not None:
        raise V1Error(409, "Conflict", "The model version was registered by another request.")


def asset_model_uri(workspace, asset: Asset) -> str:
    """The asset's prefix in the default datastore: a blob, or a directory (ending in /)."""
    origin, container, path = asset.prefix.split("/", 2)
    location = prefix_location(workspace, artifact_blob_name(origin, container, path))
    is_blob = Blob.objects.filter(
        account=location.account, container=location.container, name=location.path
    ).exists()
    suffix = "" if is_blob else "/"
    return f"azureml://datastores/{storage.DEFAULT_DATASTORE}/paths/{location.path}{suffix}"


@dataclass(frozen=True)
class ModelQuery:
    name: str | None = None
    tags: str | None = None
    properties: str | None = None
    latest_only: bool = False


def model_versions(workspace, query: ModelQuery):
    """The model versions v1 can name (numeric versions), newest version first."""
    versions = (
        ModelVersion.objects.filter(container__workspace=workspace, name__regex=r"^[0-9]{1,18}$")
        .select_related("container", "v1__asset")
        .annotate(number=NUMERIC_VERSION)
    )
    if query.name:
        versions = versions.filter(container__name__lower=query.name.lower())
    for field, text in (("tags", query.tags), ("properties", query.properties)):
        for term in filter(None, (text or "").split(",")):
            key, has_value, value = term.partition("=")
            if has_value:
                versions = versions.filter(**{f"{field}__contains": {key: value}})
            else:
                versions = versions.filter(**{f"{field}__has_key": key})
    versions = versions.order_by("container__name", "-number")
    if query.latest_only:
        versions = versions.distinct("container__name")
    return versions


def find_model(workspace, model_id: str) -> ModelVersion | None:
    """A version by its v1 id, ``name:version``."""
    name, _, version = model_id.rpartition(":")
    if not name or not version.isdigit():
        return None
    return (
        ModelVersion.objects.filter(
            container__workspace=workspace,
            container__name__lower=name.lower(),
            name=str(int(version)),
        )
        .select_related("container", "v1__asset")
        .first()
    )


def model_dto(version: ModelVersion) -> dict:
    """The v1 Model: a version registered through v1 keeps its fields; any other shows
    defaults, and as url the asset v1 names it by (its own id)."""
    registration = getattr(version, "v1", None)  # None: not registered through v1
    asset = registration.asset if registration else None
    return {
        "id": f"{version.container.name}:{version.name}",
        "name": version.container.name,
        "version": int(version.name),
        "url": f"{ASSET_URL}{(asset or version).id.hex}",
        "mimeType": registration.mime_type if registration else "application/octet-stream",
        "unpack": registration.unpack if registration else False,
        "framework": registration.framework if registration else "Custom",
        "frameworkVersion": registration.framework_version if registration else None,
        "description": version.description,
        "createdTime": version.created_at.isoformat(),
        "modifiedTime": version.modified_at.isoformat(),
        "kvTags": {k: str(v) for k, v in (version.tags or {}).items()},
        "properties": {k: str(v) for k, v in (version.properties or {}).items()},
        "datasets": [],
        "runId": None,
        "experimentName": None,
        "parentModelId": None,
        "derivedModelIds": [],
        "sampleInputData": None,
        "sampleOutputData": None,
        "resourceRequirements": None,
        "createdBy": {"userName": version.created_by},
    }


# What a model's JSON patch may change, and the model version field each one is.
PATCHABLE = {"description": "description", "kvTags": "tags", "properties": "properties"}


def patch_model(workspace, version: ModelVersion, operations, principal: str) -> ModelVersion:
    """PATCH models/{id}: a JSON patch (RFC 6902) of the model's description, kvTags and
    properties, which are the model version's, written as the v2 API writes them. Any other
    path, or a patch that does not apply, is a 400 and changes nothing."""
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise bad_request("A model is patched with a JSON patch: a list of operations.")
    for operation in operations:
        for key in ("path", "from"):
            pointer = operation.get(key)
            if key == "from" and pointer is None:
                continue
            field = pointer.split("/")[1] if isinstance(pointer, str) and "/" in pointer else None
            if field not in PATCHABLE:
                raise bad_request(
                    f"The patch {key} '{pointer}' cannot be changed: a model's patch may change "
                    "/description, /kvTags and /properties."
                )
    with transaction.atomic():
        # Locked while the patch is applied, so two patches of the tags both count.
        version = ModelVersion.objects.select_for_update().get(pk=version.pk)
        document = model_dto(version)
        current = {name: document[name] for name in PATCHABLE}
        try:
            patched = jsonpatch.apply_patch(current, operations)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException) as exc:
            raise bad_request(f"The patch does not apply: {exc}") from None
        description = patched.get("description")
        if description is not None and not isinstance(description, str):
            raise bad_request("description is a string.")
        values = {field: getattr(version, field) for field in asset_service.MODEL.version_fields}
        values.update(
            description=description,
            tags=string_map(patched.get("kvTags"), "kvTags"),
            properties=string_map(patched.get("properties"), "properties"),
        )
        try:
            version, _, _ = asset_service.put_version(
                asset_service.MODEL,
                workspace,
                version.container.name,
                version.name,
                values,
                principal,
                must_exist,
            )
        except ArmError as exc:
            raise V1Error(exc.status_code, exc.code, exc.message) from None
    return find_model(workspace, f"{version.container.name}:{version.name}")


def must_exist(current_etag: str | None) -> None:
    if current_etag is None:
        raise V1Error(404, "ModelNotFound", "The model was deleted by another request.")


def delete_model(version: ModelVersion, principal: str) -> None:
    """DELETE models/{id}: the model version goes, by the v2 API's own rule."""
    try:
        asset_service.delete(version, principal, lambda etag: None)
    except Gone:
        pass  # deleted meanwhile: gone all the same
