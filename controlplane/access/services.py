"""Role definitions and role assignments: the writes (checked, then announced for the audit
log) and the ARM shapes (Microsoft.Authorization, api-version 2022-04-01)."""

from __future__ import annotations

import uuid

from django.db import IntegrityError, transaction
from django.db.models import Q

from controlplane.access import signals
from controlplane.access.models import (
    Group,
    Principal,
    PrincipalType,
    RoleAssignment,
    RoleDefinition,
)
from controlplane.access.rbac import covers, scope_key
from controlplane.arm.errors import ArmError, bad_request

AUTHORIZATION = "providers/Microsoft.Authorization"
ASSIGNMENT_TYPE = "Microsoft.Authorization/roleAssignments"
DEFINITION_TYPE = "Microsoft.Authorization/roleDefinitions"


def scope_of(raw: str | None) -> str:
    """The scope a URL names before ``/providers/Microsoft.Authorization``: ``/`` or an ARM
    path (``/subscriptions/...`` or ``/providers/...``)."""
    scope = "/" + (raw or "").strip("/")
    if scope != "/" and not scope.lower().startswith(("/subscriptions/", "/providers/")):
        raise bad_request(f"'{scope}' is not a scope: use / or an ARM id.", "scope")
    return scope


def prefix(scope: str) -> str:
    return "" if scope == "/" else scope


def uuid_of(text, target: str, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(text))
    except ValueError:
        raise bad_request(f"{what} '{text}' is not a GUID.", target) from None


# -- role definitions


def definition_id(definition: RoleDefinition, scope: str) -> str:
    return f"{prefix(scope)}/{AUTHORIZATION}/roleDefinitions/{definition.id}"


def definition_body(definition: RoleDefinition, scope: str) -> dict:
    return {
        "id": definition_id(definition, scope),
        "name": str(definition.id),
        "type": DEFINITION_TYPE,
        "properties": {
            "roleName": definition.role_name,
            "type": definition.role_type,
            "description": definition.description,
            "permissions": definition.permissions,
            "assignableScopes": definition.assignable_scopes,
            "createdOn": definition.created_at.isoformat(),
            "updatedOn": definition.updated_at.isoformat(),
            "createdBy": definition.created_by or None,
            "updatedBy": definition.updated_by or None,
        },
    }


def find_definition(name: str) -> RoleDefinition | None:
    try:
        return RoleDefinition.objects.filter(pk=uuid.UUID(name)).first()
    except ValueError:
        return None


def definitions(filter_text: str | None):
    rows = RoleDefinition.objects.order_by("role_type", "role_name")
    if filter_text:
        field, _, value = filter_text.partition(" eq ")
        value = value.strip().strip("'")
        if field.strip() == "roleName":
            rows = rows.filter(role_name__iexact=value)
        elif field.strip() == "type":
            rows = rows.filter(role_type__iexact=value)
        else:
            raise bad_request("$filter is roleName eq '...' or type eq '...'.", "$filter")
    return rows


def read_permissions(value) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise bad_request(
            "permissions is a list of {actions, notActions}.", "properties.permissions"
        )
    blocks = []
    for index, block in enumerate(value):
        if not isinstance(block, dict):
            raise bad_request("A permission is an object.", f"properties.permissions[{index}]")
        read = {}
        for field in ("actions", "notActions", "dataActions", "notDataActions"):
            items = block.get(field) or []
            target = f"properties.permissions[{index}].{field}"
            if not isinstance(items, list) or not all(
                isinstance(i, str) and i.strip() and len(i) <= 512 for i in items
            ):
                raise bad_request(f"{field} is a list of action strings.", target)
            read[field] = items
        blocks.append(read)
    if not any(block["actions"] for block in blocks):
        raise bad_request("A role allows at least one action.", "properties.permissions")
    return blocks


def put_definition(name: str, scope: str, data, principal: str) -> tuple[RoleDefinition, bool]:
    role_id = uuid_of(name, "roleDefinitionId", "Role definition id")
    properties = data.get("properties") if isinstance(data, dict) else None
    if not isinstance(properties, dict):
        raise bad_request("A role definition has properties.", "properties")
    role_name = properties.get("roleName")
    if not isinstance(role_name, str) or not role_name.strip() or len(role_name) > 255:
        raise bad_request("roleName is 1 to 255 characters.", "properties.roleName")
    if properties.get("type", "CustomRole") != "CustomRole":
        raise bad_request("Only custom roles can be defined.", "properties.type")
    permissions = read_permissions(properties.get("permissions"))
    scopes = properties.get("assignableScopes")
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        raise bad_request(
            "assignableScopes is a list of scopes the role may be assigned at.",
            "properties.assignableScopes",
        )
    scopes = [scope_of(s) for s in scopes]
    with transaction.atomic():
        existing = RoleDefinition.objects.select_for_update().filter(pk=role_id).first()
        if existing is not None and existing.role_type == "BuiltInRole":
            raise ArmError(
                400, "RoleDefinitionUpdateNotPermitted", "Built-in roles cannot be changed."
            )
        clash = RoleDefinition.objects.filter(role_name__iexact=role_name).exclude(pk=role_id)
        if clash.exists():
            raise ArmError(
                409,
                "RoleDefinitionWithSameNameExists",
                f"A role named '{role_name}' exists.",
                "properties.roleName",
            )
        values = {
            "role_name": role_name,
            "description": properties.get("description") or "",
            "permissions": permissions,
            "assignable_scopes": scopes,
            "updated_by": principal,
        }
        if existing is None:
            definition = RoleDefinition.objects.create(id=role_id, created_by=principal, **values)
        else:
            for field, value in values.items():
                setattr(existing, field, value)
            existing.save()
            definition = existing
    return definition, existing is None


def delete_definition(definition: RoleDefinition) -> None:
    if definition.role_type == "BuiltInRole":
        raise ArmError(400, "RoleDefinitionDeleteNotPermitted", "Built-in roles cannot be deleted.")
    if definition.assignments.exists():
        raise ArmError(
            400,
            "RoleDefinitionHasAssignments",
            f"Role '{definition.role_name}' is assigned; delete its assignments first.",
        )
    definition.delete()


# -- role assignments


def assignment_body(assignment: RoleAssignment) -> dict:
    return {
        "id": f"{prefix(assignment.scope)}/{AUTHORIZATION}/roleAssignments/{assignment.id}",
        "name": str(assignment.id),
        "type": ASSIGNMENT_TYPE,
        "properties": {
            "roleDefinitionId": definition_id(assignment.role_definition, assignment.scope),
            "principalId": str(assignment.principal_id),
            "principalType": assignment.principal_type,
            "scope": assignment.scope,
            "description": assignment.description or None,
            "condition": None,
            "conditionVersion": None,
            "createdOn": assignment.created_at.isoformat(),
            "updatedOn": assignment.created_at.isoformat(),
            "createdBy": assignment.created_by or None,
            "updatedBy": assignment.created_by or None,
        },
    }


def find_assignment(scope: str, name: str) -> RoleAssignment | None:
    try:
        assignment_id = uuid.UUID(name)
    except ValueError:
        return None
    return (
        RoleAssignment.objects.select_related("role_definition")
        .filter(pk=assignment_id, scope_key=scope_key(scope))
        .first()
    )


def principal_type_of(principal_id: uuid.UUID) -> str | None:
    """The type of the principal or group with this object id, or None if there is none."""
    kind = Principal.objects.filter(object_id=principal_id).values_list("kind", flat=True).first()
    if kind is not None:
        return kind
    if Group.objects.filter(object_id=principal_id).exists():
        return PrincipalType.GROUP
    return None


def put_assignment(
    request, scope: str, name: str, data, principal: str
) -> tuple[RoleAssignment, bool]:
    assignment_id = uuid_of(name, "roleAssignmentName", "Role assignment name")
    properties = data.get("properties") if isinstance(data, dict) else None
    if not isinstance(properties, dict):
        raise bad_request("A role assignment has properties.", "properties")
    role_reference = properties.get("roleDefinitionId")
    if not isinstance(role_reference, str) or "/roleDefinitions/" not in role_reference:
        raise bad_request(
            "roleDefinitionId is a role definition's id (.../roleDefinitions/{guid}).",
            "properties.roleDefinitionId",
        )
    definition = find_definition(role_reference.rstrip("/").rsplit("/", 1)[-1])
    if definition is None:
        raise ArmError(
            400,
            "RoleDefinitionDoesNotExist",
            f"The role definition '{role_reference}' does not exist.",
            "properties.roleDefinitionId",
        )
    principal_id = uuid_of(properties.get("principalId"), "properties.principalId", "principalId")
    kind = principal_type_of(principal_id)
    if kind is None:
        raise ArmError(
            400,
            "PrincipalNotFound",
            f"Principal {principal_id} does not exist in this installation.",
            "properties.principalId",
        )
    given_type = properties.get("principalType")
    if given_type is not None and given_type != kind:
        raise bad_request(
            f"Principal {principal_id} is a {kind}, not a {given_type}.", "properties.principalType"
        )
    key = scope_key(scope)
    if not any(covers(scope_key(s), key) for s in definition.assignable_scopes):
        raise bad_request(
            f"Role '{definition.role_name}' cannot be assigned at {scope}: its assignable scopes "
            f"are {', '.join(definition.assignable_scopes)}.",
            "scope",
        )
    with transaction.atomic():
        existing = RoleAssignment.objects.select_for_update().filter(pk=assignment_id).first()
        if existing is not None:
            same = (
                existing.scope_key == key
                and existing.role_definition_id == definition.id
                and existing.principal_id == principal_id
            )
            if not same:
                raise ArmError(
                    409,
                    "RoleAssignmentUpdateNotPermitted",
                    "A role assignment cannot be changed; delete it and create another.",
                )
            return existing, False
        duplicate = RoleAssignment.objects.filter(
            Q(scope_key=key) & Q(role_definition=definition) & Q(principal_id=principal_id)
        )
        if duplicate.exists():
            raise ArmError(409, "RoleAssignmentExists", "The role assignment already exists.")
        try:
            assignment = RoleAssignment.objects.create(
                id=assignment_id,
                scope=scope,
                scope_key=key,
                role_definition=definition,
                principal_id=principal_id,
                principal_type=kind,
                description=properties.get("description") or "",
                created_by=principal,
            )
        except IntegrityError:
            raise ArmError(
                409, "RoleAssignmentExists", "The role assignment already exists."
            ) from None
        signals.role_assignment_created.send(
            sender=RoleAssignment, request=request, principal=request.user, assignment=assignment
        )
    return assignment, True


def delete_assignment(request, assignment: RoleAssignment) -> None:
    signals.role_assignment_deleted.send(
        sender=RoleAssignment, request=request, principal=request.user, assignment=assignment
    )
    assignment.delete()


def assignments(scope: str, filter_text: str | None):
    """At, above and below the scope; ``atScope()``: at and above; ``principalId eq '...'``
    or ``assignedTo('...')``: of that principal, anywhere that filter applies."""
    key = scope_key(scope)
    rows = RoleAssignment.objects.select_related("role_definition").order_by("created_at", "id")
    above = Q(scope_key="/") | Q(scope_key=key)
    parts = key.strip("/").split("/")
    for depth in range(1, len(parts)):
        above |= Q(scope_key="/" + "/".join(parts[:depth]))
    below = Q(scope_key__startswith=key.rstrip("/") + "/") if key != "/" else Q()
    text = (filter_text or "").strip()
    if text.startswith("atScope()"):
        rows = rows.filter(above)
        text = text.removeprefix("atScope()").strip().removeprefix("and").strip()
    else:
        rows = rows.filter(above | below)
    if text:
        value = text.split("'")[1] if text.count("'") >= 2 else ""
        if text.startswith("principalId eq") or text.startswith("assignedTo("):
            rows = rows.filter(principal_id=uuid_of(value, "$filter", "principalId"))
        else:
            raise bad_request(
                "$filter is atScope(), principalId eq '{id}' or assignedTo('{id}').", "$filter"
            )
    return rows
