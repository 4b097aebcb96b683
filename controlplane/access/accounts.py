"""People, service principals, groups and API tokens: the one place that writes them, for the
API (controlplane/access/views.py), ``manage.py create_api_token`` and single sign-on."""

from __future__ import annotations

import hashlib
import re
import uuid

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane.access import signals
from controlplane.access.models import Group, Principal, PrincipalType
from controlplane.access.principals import principal_of
from controlplane.arm.errors import ArmError, bad_request, conflict
from controlplane.core.models import ApiToken

User = get_user_model()

# Django's username rule: what a principal's name (its path segment) may hold.
NAME_PATTERN = r"^[\w.@+-]{1,150}$"
_UNSAFE_IN_NAME = re.compile(r"[^\w.@+-]")


def find_principal(name: str, kind: str) -> Principal | None:
    """The principal of kind ``kind`` named ``name`` (case-sensitive, as Django's usernames)."""
    return Principal.objects.select_related("user").filter(user__username=name, kind=kind).first()


def _claim_name(name: str, kind: str) -> tuple[Principal, bool]:
    """The principal named ``name`` of kind ``kind``, created if the name is free; a 409 when a
    principal of the other kind holds it (one name space for people and service principals)."""
    user = User.objects.filter(username=name).select_related("principal").first()
    if user is None:
        try:
            with transaction.atomic():
                user = User.objects.create(username=name)
                user.set_unusable_password()
                user.save(update_fields=["password"])
        except IntegrityError:
            raise conflict(f"'{name}' was created by another request; retry.") from None
        return principal_of(user, kind), True
    principal = principal_of(user, kind)
    if principal.kind != kind:
        other = "a user" if principal.kind == PrincipalType.USER else "a service principal"
        raise conflict(f"The name '{name}' is taken by {other}.")
    return principal, False


@transaction.atomic
def put_principal(
    name: str, kind: str, display_name: str | None, email: str | None = None
) -> tuple[Principal, bool]:
    """Create or update a service principal or a local user (a user gets no password: it is
    set by ``set_password``; ``email`` is a user's, None leaves it). Returns the principal
    and whether it was created."""
    principal, created = _claim_name(name, kind)
    principal.display_name = display_name if display_name is not None else name
    principal.save(update_fields=["display_name"])
    if email is not None and principal.user.email != email:
        principal.user.email = email
        principal.user.save(update_fields=["email"])
    return principal, created


def set_password(principal: Principal, password: str) -> None:
    """Set a local user's password (validated by Django's password validators, stored with
    its hashers). People who sign in with the identity provider have none."""
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    if principal.external_id:
        raise bad_request(
            f"'{principal.user.username}' signs in with the identity provider and has no "
            "password here.",
            "password",
        )
    try:
        validate_password(password, principal.user)
    except ValidationError as exc:
        raise bad_request(" ".join(exc.messages), "password") from None
    principal.user.set_password(password)
    principal.user.save(update_fields=["password"])


def delete_principal(principal: Principal, request) -> None:
    """Delete the account, its tokens (each announced as revoked) and its group memberships.
    Role assignments naming its object id stay, as Azure's do, and match no one. A caller
    cannot delete the principal it acts as (it would lock itself out mid-request)."""
    if getattr(request, "user", None) is not None and request.user.pk == principal.user_id:
        raise ArmError(
            409, "Conflict", "A principal cannot delete itself; another Owner can.", "name"
        )
    with transaction.atomic():
        user = principal.user
        for token in ApiToken.objects.usable().filter(user=user):
            _announce_revoked(request, token, user)
        user.delete()


#
# Groups
#
def find_group(name: str) -> Group | None:
    return Group.objects.filter(name=name).first()


def members_by_object_id(object_ids: list[uuid.UUID], target: str) -> list:
    """The user accounts of the principals named by object id; a 400 naming the first that
    is not a user or a service principal."""
    found = {p.object_id: p.user_id for p in Principal.objects.filter(object_id__in=object_ids)}
    for index, object_id in enumerate(object_ids):
        if object_id not in found:
            raise bad_request(
                f"No user or service principal has the object id '{object_id}'.",
                f"{target}[{index}]",
            )
    return [found[object_id] for object_id in object_ids]


@transaction.atomic
def put_group(
    name: str, external_id: str | None, members: list[uuid.UUID] | None
) -> tuple[Group, bool]:
    """Create or update a group: ``external_id`` replaces the group's (None: it maps no claim);
    ``members`` (principal object ids) replaces its members when given."""
    member_ids = (
        members_by_object_id(members, "properties.members") if members is not None else None
    )
    if external_id is not None:
        holder = Group.objects.filter(external_id=external_id).exclude(name=name).first()
        if holder is not None:
            raise conflict(
                f"Group '{holder.name}' already maps the claim value '{external_id}'.",
                "properties.externalId",
            )
    try:
        with transaction.atomic():
            group, created = Group.objects.select_for_update().get_or_create(
                name=name, defaults={"external_id": external_id}
            )
    except IntegrityError:
        raise conflict(f"Group '{name}' was written by another request; retry.") from None
    if not created and group.external_id != external_id:
        group.external_id = external_id
        group.save(update_fields=["external_id"])
    if member_ids is not None:
        group.members.set(member_ids)
    return group, created


def sync_claimed_groups(user, claim_values: list[str]) -> list[Group]:
    """Make ``user`` a member of exactly the groups that map one of ``claim_values`` (among
    groups that map a claim at all); claim values no group maps are ignored, and groups an
    administrator manages by hand (no external id) are left alone."""
    mapped = Group.objects.exclude(external_id__isnull=True)
    wanted = list(mapped.filter(external_id__in=claim_values))
    for group in mapped.filter(members=user).exclude(pk__in=[g.pk for g in wanted]):
        group.members.remove(user)
    for group in wanted:
        group.members.add(user)
    return wanted


#
# API tokens
#
def issue_token(request, owner, label: str, expires_at) -> tuple[ApiToken, str]:
    """A new API token for ``owner``, announced for the audit log; the plaintext is returned
    once and never stored."""
    token, plaintext = ApiToken.issue(owner, label, days=None, expires_at=expires_at)
    signals.token_created.send(
        sender=ApiToken,
        request=request,
        principal=getattr(request, "user", None),
        token=token,
        owner=owner,
    )
    return token, plaintext


def revoke_token(request, token: ApiToken) -> bool:
    """Revoke ``token`` (no request can use it after this returns). Returns False when it was
    already revoked. The token a request authenticated with is not revoked by that request
    (it would lock the caller out mid-request): another token or principal revokes it."""
    if getattr(request, "auth", None) is not None and getattr(request.auth, "pk", None) == token.pk:
        raise ArmError(
            409, "Conflict", "A token cannot revoke itself; use another token.", "tokenName"
        )
    now = timezone.now()
    if not ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now):
        return False
    token.revoked_at = now
    _announce_revoked(request, token, token.user)
    return True


def _announce_revoked(request, token: ApiToken, owner) -> None:
    signals.token_revoked.send(
        sender=ApiToken,
        request=request,
        principal=getattr(request, "user", None),
        token=token,
        owner=owner,
    )


#
# People who sign in with the identity provider
#
def person_from_claims(issuer: str, claims: dict, groups_claim: str) -> tuple[object, list]:
    """The user a verified ID token names (found by ``iss`` and ``sub``, created on first
    sign-in), its display name refreshed, and its claimed groups set. Returns the user and
    the groups it is now a member of through the claim."""
    external_id = external_id_of(issuer, claims)
    display = claims.get("name") or claims.get("preferred_username") or claims.get("email")
    display = str(display)[:255] if display else None
    with transaction.atomic():
        principal = (
            Principal.objects.select_related("user")
            .select_for_update()
            .filter(external_id=external_id)
            .first()
        )
        if principal is None:
            principal = _new_person(external_id, claims)
        if display and principal.display_name != display:
            principal.display_name = display
            principal.save(update_fields=["display_name"])
        user = principal.user
        email = claims.get("email")
        if email and user.email != email:
            user.email = email[:254]
            user.save(update_fields=["email"])
        groups = sync_claimed_groups(user, claim_values(claims.get(groups_claim)))
    return user, groups


def external_id_of(issuer: str, claims: dict) -> str:
    """Who the identity provider says the person is: its issuer and their subject."""
    return f"{issuer} {claims['sub']}"


def claim_values(value) -> list[str]:
    """A groups claim as a list of strings (IdPs send a list, some a single string)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str)]
    return []


def _new_person(external_id: str, claims: dict) -> Principal:
    """A user for a person the identity provider vouches for. The username is their
    preferred name when free; never an existing account, which would hand it to whoever the
    identity provider names so."""
    wanted = claims.get("preferred_username") or claims.get("email") or claims["sub"]
    base = _UNSAFE_IN_NAME.sub("-", str(wanted))[:140] or "user"
    username = base
    if User.objects.filter(username=username).exists():
        username = f"{base}-{hashlib.sha256(external_id.encode()).hexdigest()[:8]}"
    user = User(username=username)
    user.set_unusable_password()
    user.save()
    principal = principal_of(user, PrincipalType.USER)
    principal.external_id = external_id
    principal.save(update_fields=["external_id"])
    return principal


def refuse_service_principal_sign_in(user) -> None:
    """Service principals hold tokens; they never sign in."""
    if principal_of(user).kind != PrincipalType.USER:
        raise ArmError(403, "AuthorizationFailed", "Service principals cannot sign in.")
