"""Who may do what: principals (people and service principals), groups of them, role
definitions (lists of allowed and excluded actions, as Azure's) and role assignments of a
role to a principal or group at a scope, inherited by everything below it."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class PrincipalType(models.TextChoices):
    USER = "User"
    SERVICE_PRINCIPAL = "ServicePrincipal"
    GROUP = "Group"


class Principal(models.Model):
    """A user account's kind and object id. A person signs in (password or the organisation's
    identity provider); a service principal only holds API tokens."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="principal",
    )
    kind = models.CharField(
        max_length=16,
        choices=[
            (PrincipalType.USER, "User"),
            (PrincipalType.SERVICE_PRINCIPAL, "Service principal"),
        ],
        default=PrincipalType.SERVICE_PRINCIPAL,
    )
    object_id = models.UUIDField(unique=True)
    display_name = models.CharField(max_length=255, blank=True, default="")
    # The identity provider's subject (iss + sub) for people who sign in with it.
    external_id = models.CharField(max_length=512, unique=True, null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.kind} {self.user.get_username()}"


class Group(models.Model):
    """A named set of principals that role assignments can name; ``external_id`` is the value
    of the identity provider's groups claim that makes a person who signs in a member."""

    object_id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=255, unique=True)
    external_id = models.CharField(max_length=512, unique=True, null=True, blank=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="access_groups")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class RoleDefinition(models.Model):
    """Microsoft.Authorization/roleDefinitions: built-in (Weir's copies of Azure's) or custom."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    role_name = models.CharField(max_length=255, unique=True)
    description = models.TextField(blank=True, default="")
    role_type = models.CharField(max_length=16, default="CustomRole")  # BuiltInRole | CustomRole
    # [{"actions": [...], "notActions": [...], "dataActions": [...], "notDataActions": [...]}]
    permissions = models.JSONField(default=list)
    assignable_scopes = models.JSONField(default=list)
    created_by = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_by = models.CharField(max_length=255, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.role_name


class RoleAssignment(models.Model):
    """Microsoft.Authorization/roleAssignments: a role for a principal (a user, a service
    principal or a group, by object id) at a scope (``/`` is every scope)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4)
    # The scope as given, and lower-cased for matching (ARM ids are case-insensitive).
    scope = models.CharField(max_length=2048)
    scope_key = models.CharField(max_length=2048, db_index=True)
    role_definition = models.ForeignKey(
        RoleDefinition, on_delete=models.PROTECT, related_name="assignments"
    )
    principal_id = models.UUIDField(db_index=True)
    principal_type = models.CharField(max_length=16, choices=PrincipalType.choices)
    description = models.TextField(blank=True, default="")
    created_by = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                "scope_key", "role_definition", "principal_id", name="role_assignment_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.role_definition} for {self.principal_id} at {self.scope}"
