"""A workspace's blob storage: its account, SAS URLs into it, and resolving asset URIs
(``azureml://datastores/...`` or blob URLs) to blobs."""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.db import IntegrityError, models, transaction

from controlplane.blobstore import sas
from controlplane.blobstore.backends import blob_backend, read_chunks
from controlplane.blobstore.models import Blob, PendingUpload, StorageAccount, new_blob_etag
from controlplane.blobstore.paths import HOST_STYLE, UnsafePath, check_blob_name

DEFAULT_DATASTORE = "workspaceblobstore"
UPLOAD_PREFIX = "LocalUpload"

DATASTORE_URI = re.compile(
    r"^azureml://(?:subscriptions/[^/]+/resourcegroups/[^/]+/workspaces/[^/]+/)?"
    r"datastores/(?P<datastore>[^/]+)/paths/(?P<path>.*)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class BlobLocation:
    account: StorageAccount
    container: str
    path: str  # a blob name, or a directory prefix ending in "/"


def account_for(workspace) -> StorageAccount:
    """The workspace's storage account, made on first use."""
    existing = StorageAccount.objects.filter(workspace=workspace).first()
    if existing:
        return existing
    try:
        with transaction.atomic():
            return StorageAccount.objects.create(
                workspace=workspace, name=f"weir{workspace.workspace_id.hex[:20]}"
            )
    except IntegrityError:  # a concurrent first use made it
        return StorageAccount.objects.get(workspace=workspace)


def blob_url(account: StorageAccount, container: str, path: str = "") -> str:
    url = f"{settings.WEIR_BLOB_URL.rstrip('/')}/{account.name}/{container}"
    return f"{url}/{path}" if path else url


def sas_token(
    account: StorageAccount,
    container: str,
    path: str,
    permissions: str,
    resource: str,
    seconds: int | None = None,
) -> str:
    lifetime = timedelta(seconds=seconds or settings.WEIR_SAS_LIFETIME)
    grant = sas.grant_for(account.name, container, path, permissions, lifetime, resource)
    return sas.issue(account.key, grant)


class UnknownPendingUpload(ValueError):
    """The pendingUploadId was not issued by Weir for this asset version."""


def start_pending_upload(
    workspace, collection: str, name: str, version: str, pending_upload_id: uuid.UUID | None
) -> dict:
    """An upload directory in the workspace's default container for one asset version, and a
    SAS to write into it (PendingUploadResponseDto).

    Without an id, a new directory with an id Weir chose. With one, the same directory
    again, if Weir issued that id for this very asset version; otherwise UnknownPendingUpload,
    so no client can name (or guess) a directory and be handed a SAS to it.
    """
    asset = {"workspace": workspace, "collection": collection}
    if pending_upload_id is None:
        upload = PendingUpload.objects.create(**asset, name=name, version=version)
    else:
        upload = PendingUpload.objects.filter(
            **asset, id=pending_upload_id, name__iexact=name, version__iexact=version
        ).first()
        if upload is None:
            raise UnknownPendingUpload(
                f"pendingUploadId '{pending_upload_id}' was not issued for "
                f"{collection}/{name}/versions/{version}; leave it out to start a new upload."
            )
    account = account_for(workspace)
    directory = f"{UPLOAD_PREFIX}/{upload.id}"
    container = account.default_container
    token = sas_token(account, container, directory, "racwdl", "d")
    return {
        "blobReferenceForConsumption": {
            "blobUri": blob_url(account, container, directory),
            "storageAccountArmId": storage_account_arm_id(workspace, account),
            "credential": {
                "credentialType": "SAS",
                "sasUri": f"{blob_url(account, container, directory)}?{token}",
            },
        },
        "pendingUploadId": str(upload.id),
        "pendingUploadType": "TemporaryBlobReference",
    }


def storage_account_arm_id(workspace, account: StorageAccount) -> str:
    return (
        f"/subscriptions/{workspace.subscription_id}/resourceGroups/{workspace.resource_group}"
        f"/providers/Microsoft.Storage/storageAccounts/{account.name}"
    )


def resolve(workspace, uri: str) -> BlobLocation:
    """The blob or directory an asset URI names in the workspace's storage.

    Raises ValueError with a message for the user when the URI is not in Weir's storage,
    names another workspace's account, or holds an unsafe path.
    """
    account = account_for(workspace)
    if match := DATASTORE_URI.match(uri):
        if match["datastore"].lower() != DEFAULT_DATASTORE:
            raise ValueError(f"datastore '{match['datastore']}' does not exist")
        container, path = account.default_container, unquote(match["path"])
    else:
        parts = urlsplit(uri)
        if parts.scheme not in ("https", "http"):
            raise ValueError(f"'{uri}' is neither an azureml://datastores/ URI nor a blob URL")
        segments = unquote(parts.path).lstrip("/").split("/")
        if match := HOST_STYLE.match(parts.hostname or ""):
            account_name = match["account"].lower()
        else:
            account_name, segments = segments[0], segments[1:]
        if account_name != account.name or len(segments) < 1:
            raise ValueError(f"'{uri}' is not in this workspace's storage")
        container, path = segments[0], "/".join(segments[1:])
    try:
        check_blob_name(path.rstrip("/") or "x")
    except UnsafePath as exc:
        raise ValueError(str(exc)) from None
    return BlobLocation(account, container, path)


def exists(location: BlobLocation) -> bool:
    """Whether the location names a stored blob, or a directory with at least one blob."""
    blobs = Blob.objects.filter(account=location.account, container=location.container)
    path = location.path
    if not path or path.endswith("/"):
        return blobs.filter(name__startswith=path).exists()
    return blobs.filter(models.Q(name=path) | models.Q(name__startswith=path + "/")).exists()


def write_blob(
    account: StorageAccount,
    container: str,
    name: str,
    chunks,
    content_type: str = "application/octet-stream",
) -> Blob:
    """Store content under a blob name (replacing what was there) from the server side."""
    check_blob_name(name)
    stored = blob_backend().put(chunks, settings.WEIR_BLOB_MAX_SIZE)
    blob, _ = Blob.objects.update_or_create(
        account=account,
        container=container,
        name=name,
        defaults={
            "digest": stored.digest,
            "size": stored.size,
            "content_md5": stored.md5,
            "content_type": content_type,
            "etag": new_blob_etag(),
        },
    )
    return blob


def is_local_reference(uri: str) -> bool:
    return uri.startswith("file://") or uri.startswith("/")


def import_local(workspace, uri: str) -> str:
    """Copy a file or directory on this machine into the workspace's default datastore and
    return its ``azureml://datastores/...`` URI.

    Only paths under ``WEIR_LOCAL_ASSET_ROOTS`` are read; links are refused, so nothing
    outside those roots can be reached. A copy that fails leaves nothing behind.
    """
    path = Path(uri.removeprefix("file://"))
    roots = [Path(root).resolve() for root in settings.WEIR_LOCAL_ASSET_ROOTS]
    try:
        resolved = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise ValueError(f"'{path}' does not exist on the server") from None
    if path.is_symlink() or not any(resolved.is_relative_to(root) for root in roots):
        raise ValueError(
            f"'{path}' is not under a directory the server may read from (WEIR_LOCAL_ASSET_ROOTS)"
        )
    files = _local_files(resolved)
    total = sum(size for _, _, size in files)
    if total > settings.WEIR_BLOB_MAX_SIZE:
        raise ValueError(f"'{path}' holds {total} bytes, more than {settings.WEIR_BLOB_MAX_SIZE}")
    account = account_for(workspace)
    container = account.default_container
    directory = f"{UPLOAD_PREFIX}/{uuid.uuid4()}/{resolved.name}"
    try:
        for source, relative, _ in files:
            name = f"{directory}/{relative}" if relative else directory
            with source.open("rb") as handle:
                write_blob(account, container, name, read_chunks(handle))
    except BaseException:
        Blob.objects.filter(
            account=account, container=container, name__startswith=directory
        ).delete()
        raise
    suffix = "/" if resolved.is_dir() else ""
    return f"azureml://datastores/{DEFAULT_DATASTORE}/paths/{directory}{suffix}"


def _local_files(root: Path) -> list[tuple[Path, str, int]]:
    """Every regular file under ``root`` with its path relative to it; links are refused."""
    if root.is_file():
        return [(root, "", root.stat().st_size)]
    found = []
    for directory, dirnames, filenames in os.walk(root):
        for entry in [*dirnames, *filenames]:
            candidate = Path(directory, entry)
            if candidate.is_symlink():
                raise ValueError(f"'{candidate}' is a link; links are not copied")
        for filename in filenames:
            candidate = Path(directory, filename)
            if not candidate.is_file():
                raise ValueError(f"'{candidate}' is not a regular file")
            relative = candidate.relative_to(root).as_posix()
            found.append((candidate, relative, candidate.stat().st_size))
    return sorted(found, key=lambda item: item[1])
