"""Columns every ARM resource shares: identity, ETag and systemData."""

import uuid

from django.db import models


def new_etag() -> str:
    return uuid.uuid4().hex


class ArmResource(models.Model):
    """An ARM resource: a name unique (case-insensitively) under its parent, an ETag that
    changes with every write, and who created and last changed it (systemData)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255)
    etag = models.CharField(max_length=32, default=new_etag)
    created_by = models.CharField(max_length=255, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    modified_by = models.CharField(max_length=255, default="")
    modified_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class TrackedResource(ArmResource):
    """An ARM tracked resource: it also has a location, tags, and optional identity/kind."""

    location = models.CharField(max_length=64)
    tags = models.JSONField(default=dict)
    kind = models.CharField(max_length=64, null=True, blank=True)
    identity = models.JSONField(null=True, blank=True)

    class Meta:
        abstract = True
