"""Principals: every user account has one (a person or a service principal) with a stable
object id, the ``oid`` of its API tokens and the ``principalId`` role assignments name."""

from __future__ import annotations

import uuid

from controlplane.access.models import Group, Principal, PrincipalType


def default_object_id(user) -> uuid.UUID:
    """The object id a principal gets when first seen: stable for the user."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"weir:user:{user.pk}")


def principal_of(user, kind: str = PrincipalType.SERVICE_PRINCIPAL) -> Principal:
    """The user's principal, made on first use (``kind`` only then)."""
    principal = getattr(user, "principal", None)
    if principal is None:
        principal, _ = Principal.objects.get_or_create(
            user=user,
            defaults={
                "kind": kind,
                "object_id": default_object_id(user),
                "display_name": user.get_username(),
            },
        )
    return principal


def identities(user) -> set[uuid.UUID]:
    """The object ids role assignments may name for this user: its own and its groups'."""
    ids = {principal_of(user).object_id}
    ids.update(Group.objects.filter(members=user).values_list("object_id", flat=True))
    return ids


def make_first_owner(user) -> bool:
    """On an install with no role assignment yet, the first principal to get a token is Owner
    of everything (``/``), so a fresh install can be used at once. Returns whether it was."""
    from controlplane.access.models import RoleAssignment
    from controlplane.access.roles import OWNER

    if RoleAssignment.objects.exists():
        return False
    principal = principal_of(user)
    RoleAssignment.objects.create(
        scope="/",
        scope_key="/",
        role_definition_id=OWNER,
        principal_id=principal.object_id,
        principal_type=principal.kind,
        description="The first principal of this install.",
        created_by="weir",
    )
    return True
