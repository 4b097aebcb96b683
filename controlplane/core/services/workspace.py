"""Workspace writes (synchronous: a workspace has nothing to provision)."""

from __future__ import annotations

from django.db import transaction

from controlplane.arm.errors import conflict
from controlplane.core.models import Workspace
from controlplane.core.services.rows import Fixed, lock, merged_sku, save_changes, upsert

WORKSPACE_FIELDS = ("tags", "kind", "identity", "sku", "friendly_name", "description", "settings")


def named(subscription_id: str, resource_group: str, name: str):
    return Workspace.objects.filter(
        subscription_id__lower=subscription_id.lower(),
        resource_group__lower=resource_group.lower(),
        name__lower=name.lower(),
    )


def find(subscription_id: str, resource_group: str, name: str) -> Workspace | None:
    return named(subscription_id, resource_group, name).first()


def _values(data: dict) -> dict:
    values = {field: data.get(field) for field in WORKSPACE_FIELDS}
    values["tags"] = values["tags"] or {}
    values["settings"] = {k: v for k, v in (values["settings"] or {}).items() if v is not None}
    return values


def create_or_update(
    scope: tuple[str, str], name: str, data: dict, principal: str, check
) -> tuple[Workspace, bool, None]:
    """PUT in ``scope`` (subscription, resource group): create, or replace the settings
    (location is fixed). Returns (workspace, created, None): nothing runs afterwards."""
    subscription_id, resource_group = scope
    return upsert(
        named(subscription_id, resource_group, name),
        check,
        principal,
        _values(data),
        new=lambda: {
            "subscription_id": subscription_id,
            "resource_group": resource_group,
            "name": name,
        },
        fixed=(Fixed("location", data["location"], "location"),),
    )


def patch(workspace: Workspace, data: dict, principal: str, check) -> None:
    """PATCH: tags replace the map; sku and properties merge."""
    with transaction.atomic():
        workspace = lock(workspace, check)
        if "tags" in data:
            workspace.tags = data["tags"] or {}
        if data.get("sku"):
            workspace.sku = merged_sku(workspace.sku, data["sku"])
        for field in ("friendly_name", "description"):
            if field in data:
                setattr(workspace, field, data[field])
        if data.get("settings"):
            workspace.settings = {**workspace.settings, **data["settings"]}
        save_changes(workspace, principal)


def delete(workspace: Workspace, principal: str, check) -> None:
    """DELETE: refused while the workspace holds online endpoints; assets go with it."""
    with transaction.atomic():
        workspace = lock(workspace, check)
        endpoints = sorted(workspace.online_endpoints.values_list("name", flat=True))
        if endpoints:
            raise conflict(
                f"Workspace '{workspace.name}' still has online endpoints "
                f"({', '.join(endpoints)}); delete them first.",
                "workspaceName",
            )
        workspace.delete()
