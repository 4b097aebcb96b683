"""Workspace writes (synchronous: a workspace has nothing to provision)."""

from __future__ import annotations

from django.db import transaction

from controlplane.arm.errors import bad_request, conflict
from controlplane.core.models import Workspace
from controlplane.core.services.rows import create_or_conflict, save_changes

WORKSPACE_FIELDS = ("tags", "kind", "identity", "sku", "friendly_name", "description", "settings")


def find(subscription_id: str, resource_group: str, name: str, *, lock: bool = False):
    queryset = Workspace.objects.select_for_update() if lock else Workspace.objects
    return queryset.filter(
        subscription_id__iexact=subscription_id,
        resource_group__iexact=resource_group,
        name__iexact=name,
    ).first()


def _values(data: dict) -> dict:
    values = {field: data.get(field) for field in WORKSPACE_FIELDS}
    values["tags"] = values["tags"] or {}
    values["settings"] = {k: v for k, v in (values["settings"] or {}).items() if v is not None}
    return values


def create_or_update(
    subscription_id: str, resource_group: str, name: str, data: dict, principal: str, check
) -> tuple[Workspace, bool]:
    """PUT: create, or replace the settings (location is fixed). Returns (workspace, created)."""
    values = _values(data)
    with transaction.atomic():
        workspace = find(subscription_id, resource_group, name, lock=True)
        check(workspace.etag if workspace else None)
        if workspace is None:
            workspace = create_or_conflict(
                Workspace,
                subscription_id=subscription_id,
                resource_group=resource_group,
                name=name,
                location=data["location"],
                created_by=principal,
                modified_by=principal,
                **values,
            )
            return workspace, True
        if data["location"].lower() != workspace.location.lower():
            raise bad_request("location cannot change after creation.", "location")
        save_changes(workspace, principal, values)
        return workspace, False


def patch(workspace: Workspace, data: dict, principal: str, check) -> Workspace:
    """PATCH: tags replace the map; sku and properties merge."""
    with transaction.atomic():
        workspace = Workspace.objects.select_for_update().get(pk=workspace.pk)
        check(workspace.etag)
        if "tags" in data:
            workspace.tags = data["tags"] or {}
        if data.get("sku"):
            workspace.sku = {**(workspace.sku or {}), **data["sku"]}
        for field in ("friendly_name", "description"):
            if field in data:
                setattr(workspace, field, data[field])
        if data.get("settings"):
            workspace.settings = {**workspace.settings, **data["settings"]}
        save_changes(workspace, principal)
        return workspace


def delete(workspace: Workspace, check) -> None:
    """DELETE: refused while the workspace holds online endpoints; assets go with it."""
    with transaction.atomic():
        workspace = Workspace.objects.select_for_update().get(pk=workspace.pk)
        check(workspace.etag)
        endpoints = sorted(workspace.online_endpoints.values_list("name", flat=True))
        if endpoints:
            raise conflict(
                f"Workspace '{workspace.name}' still has online endpoints "
                f"({', '.join(endpoints)}); delete them first.",
                "workspaceName",
            )
        workspace.delete()
