"""Events that are not ARM writes of their own, recorded from signals: API tokens created and
revoked, role assignments and definitions, and sign-ins.

Their operation names, beside Azure's ``Microsoft.Authorization/roleAssignments/write|delete``
and ``Microsoft.Authorization/roleDefinitions/write|delete``:

- ``Weir.Access/tokens/write`` and ``Weir.Access/tokens/revoke/action`` on
  ``/providers/Weir.Access/principals/{owner's object id}/tokens/{token id}``; a token's
  record holds its name, prefix, owner and expiry, never the token;
- ``Weir.Access/signIn/action`` on ``/providers/Weir.Access/principals/{object id}`` (Failed,
  with the name tried, on ``/providers/Weir.Access/principals`` when no account has it).

A signal sent during an audited request joins that request's record (middleware.py); any other
(``manage.py create_api_token``, a sign-in page) is written at once.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from controlplane.access import signals
from controlplane.audit import changes, records
from controlplane.audit.models import Outcome

AUTHORIZATION = "Microsoft.Authorization"
ACCESS = "Weir.Access"


def emit(request, principal, **event) -> None:
    """Join ``event`` to the audited request it happened in, or write it now. Who acted:
    ``principal``, else the event's own name, else the request's user, else (no request) the
    operator at the shell."""
    http_request = getattr(request, "_request", request)
    if principal is not None:
        event.update(records.principal_fields(principal))
    elif "principal_name" not in event:
        if request is None:
            event.update(records.operator_fields())
        else:
            event.update(records.principal_fields(getattr(http_request, "user", None)))
    audit = getattr(http_request, "audit", None)
    if audit is not None:
        audit.events.append(event)
        return
    event.setdefault("outcome", Outcome.SUCCEEDED)
    records.write(**records.request_fields(request), **event)


def principal_path(user) -> str:
    from controlplane.access.principals import principal_of

    return f"/providers/{ACCESS}/principals/{principal_of(user).object_id}"


def token_properties(token, owner) -> dict:
    return {
        "name": token.name,
        "prefix": token.prefix,
        "owner": owner.get_username(),
        "expiresAt": token.expires_at.isoformat() if token.expires_at else None,
    }


@receiver(signals.token_created)
def token_created(sender, token, owner, request=None, principal=None, **kwargs):
    properties = token_properties(token, owner)
    emit(
        request,
        principal,
        action=f"{ACCESS}/tokens/write",
        resource_id=f"{principal_path(owner)}/tokens/{token.pk}",
        changes=changes.diff(None, {"properties": properties}),
        details={"token": properties},
    )


@receiver(signals.token_revoked)
def token_revoked(sender, token, owner, request=None, principal=None, **kwargs):
    revoked = token.revoked_at.isoformat() if token.revoked_at else None
    emit(
        request,
        principal,
        action=f"{ACCESS}/tokens/revoke/action",
        resource_id=f"{principal_path(owner)}/tokens/{token.pk}",
        changes=changes.diff(
            {"properties": {"revokedAt": None}}, {"properties": {"revokedAt": revoked}}
        ),
        details={"token": token_properties(token, owner)},
    )


def assignment_id(assignment) -> str:
    scope = "" if assignment.scope == "/" else assignment.scope.rstrip("/")
    return f"{scope}/providers/{AUTHORIZATION}/roleAssignments/{assignment.pk}"


def assignment_properties(assignment) -> dict:
    return {
        "roleDefinitionId": definition_id(assignment.role_definition_id),
        "principalId": str(assignment.principal_id),
        "principalType": assignment.principal_type,
        "scope": assignment.scope,
        "description": assignment.description,
    }


def definition_id(pk) -> str:
    return f"/providers/{AUTHORIZATION}/roleDefinitions/{pk}"


def definition_properties(definition) -> dict:
    return {
        "roleName": definition.role_name,
        "description": definition.description,
        "type": definition.role_type,
        "permissions": definition.permissions,
        "assignableScopes": definition.assignable_scopes,
    }


@receiver(signals.role_assignment_created)
def role_assignment_created(sender, assignment, request=None, principal=None, **kwargs):
    emit(
        request,
        principal,
        action=f"{AUTHORIZATION}/roleAssignments/write",
        resource_id=assignment_id(assignment),
        changes=changes.diff(None, {"properties": assignment_properties(assignment)}),
    )


@receiver(signals.role_assignment_deleted)
def role_assignment_deleted(sender, assignment, request=None, principal=None, **kwargs):
    emit(
        request,
        principal,
        action=f"{AUTHORIZATION}/roleAssignments/delete",
        resource_id=assignment_id(assignment),
        changes=changes.diff({"properties": assignment_properties(assignment)}, None),
    )


@receiver(signals.role_definition_changed)
def role_definition_changed(
    sender, definition, request=None, principal=None, before=None, **kwargs
):
    """``before``, when the sender gives it, is the definition's properties before the change
    (as definition_properties makes them); without it the record shows the definition as it
    now is, against nothing."""
    emit(
        request,
        principal,
        action=f"{AUTHORIZATION}/roleDefinitions/write",
        resource_id=definition_id(definition.pk),
        changes=changes.diff(
            {"properties": before} if before else None,
            {"properties": definition_properties(definition)},
        ),
    )


@receiver(signals.role_definition_deleted)
def role_definition_deleted(sender, definition, request=None, principal=None, **kwargs):
    emit(
        request,
        principal,
        action=f"{AUTHORIZATION}/roleDefinitions/delete",
        resource_id=definition_id(definition.pk),
        changes=changes.diff({"properties": definition_properties(definition)}, None),
    )


@receiver(user_logged_in)
def signed_in(sender, request, user, **kwargs):
    emit(
        request,
        user,
        action=f"{ACCESS}/signIn/action",
        resource_id=principal_path(user),
        outcome=Outcome.SUCCEEDED,
    )


@receiver(user_login_failed)
def sign_in_failed(sender, credentials, request=None, **kwargs):
    # Django hands over the credentials with secrets already masked; only the name is kept.
    name = str(
        credentials.get(get_user_model().USERNAME_FIELD) or credentials.get("username") or ""
    )
    user = get_user_model().objects.filter(**{get_user_model().USERNAME_FIELD: name}).first()
    event = {
        "action": f"{ACCESS}/signIn/action",
        "resource_id": principal_path(user) if user else f"/providers/{ACCESS}/principals",
        "outcome": Outcome.FAILED,
        "principal_name": name[:255],
    }
    if user is not None:
        event.update(records.principal_fields(user), principal_name=name[:255])
    emit(request, None, **event)
