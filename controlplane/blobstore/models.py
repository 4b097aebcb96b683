"""Blob storage: each workspace's storage account, its blobs, uncommitted blocks and the
upload directories issued to asset versions.

Bytes live in the blob store backend (content-addressed, see backends.py); these
rows map Azure-style names (account/container/blob) to content digests and carry the
properties and metadata the Blob REST API returns.
"""

import secrets
import uuid

from django.db import models

from controlplane.core.crypto import EncryptedTextField


def new_account_key() -> str:
    return secrets.token_urlsafe(32)


class StorageAccount(models.Model):
    """A workspace's blob account. Its key signs the account's SAS tokens."""

    workspace = models.OneToOneField(
        "weir.Workspace", on_delete=models.CASCADE, related_name="storage_account"
    )
    # Azure's rules: 3-24 lowercase letters and digits; it names the account in blob URLs.
    name = models.CharField(max_length=24, unique=True)
    key = EncryptedTextField(default=new_account_key)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "weir_storageaccount"  # the table it had in the core app

    def __str__(self) -> str:
        return self.name

    @property
    def default_container(self) -> str:
        """The container behind the workspace's ``workspaceblobstore`` datastore."""
        return f"azureml-blobstore-{self.workspace.workspace_id}"


def new_blob_etag() -> str:
    return "0x" + uuid.uuid4().hex[:16].upper()


class Blob(models.Model):
    account = models.ForeignKey(StorageAccount, on_delete=models.CASCADE, related_name="blobs")
    container = models.CharField(max_length=63)
    # Compared and ordered by code point, as Azure lists blobs, whatever the database's locale.
    name = models.CharField(max_length=1024, db_collation="C")
    digest = models.CharField(max_length=64)
    size = models.BigIntegerField()
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    # Base64 MD5 of the content, as Azure reports it in Content-MD5: computed for Put Blob,
    # only what the client sent for a blob committed from blocks ("" for none).
    content_md5 = models.CharField(max_length=32, default="")
    # The other content settings the client sets and reads back (x-ms-blob-content-*).
    content_encoding = models.CharField(max_length=255, default="")
    content_language = models.CharField(max_length=255, default="")
    content_disposition = models.CharField(max_length=1024, default="")
    cache_control = models.CharField(max_length=255, default="")
    metadata = models.JSONField(default=dict)
    etag = models.CharField(max_length=32, default=new_blob_etag)
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "weir_blob"
        constraints = [
            models.UniqueConstraint("account", "container", "name", name="blob_unique_name")
        ]
        indexes = [models.Index(fields=["account", "container", "name"])]

    def __str__(self) -> str:
        return f"{self.account.name}/{self.container}/{self.name}"


class StagedBlock(models.Model):
    """A block uploaded by Put Block and not yet committed by Put Block List."""

    account = models.ForeignKey(StorageAccount, on_delete=models.CASCADE, related_name="+")
    container = models.CharField(max_length=63)
    name = models.CharField(max_length=1024)
    block_id = models.CharField(max_length=128)
    digest = models.CharField(max_length=64)
    size = models.BigIntegerField()
    staged_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "weir_stagedblock"
        constraints = [
            models.UniqueConstraint(
                "account", "container", "name", "block_id", name="staged_block_unique_id"
            )
        ]

    def __str__(self) -> str:
        return f"{self.container}/{self.name}#{self.block_id}"


class PendingUpload(models.Model):
    """An upload directory (``LocalUpload/{id}``) issued by startPendingUpload to one asset
    version. The id is Weir's, never the client's: asking again with it re-issues a SAS for
    the same directory, and only for the asset version it was issued to."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("weir.Workspace", on_delete=models.CASCADE, related_name="+")
    collection = models.CharField(max_length=16)  # the URL segment: "codes" or "models"
    name = models.CharField(max_length=255)
    version = models.CharField(max_length=255)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.collection}/{self.name}/versions/{self.version}#{self.id}"
