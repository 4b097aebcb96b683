"""Compute writes (synchronous: attaching a cluster provisions nothing), and which compute an
endpoint names."""

from __future__ import annotations

from collections.abc import Callable

from django.db import transaction

from controlplane.arm.errors import conflict
from controlplane.core.models import Compute, OnlineEndpoint, Workspace
from controlplane.core.services.rows import Fixed, lock, upsert

FIELDS = ("tags", "compute_type", "description", "resource_id", "namespace", "properties")


def _values(data: dict) -> dict:
    values = {field: data.get(field) for field in FIELDS}
    values["tags"] = values["tags"] or {}
    values["namespace"] = values["namespace"] or "default"
    values["properties"] = {k: v for k, v in (values["properties"] or {}).items() if v is not None}
    return values


def find(workspace: Workspace, name: str) -> Compute | None:
    return _by_name(workspace, name).select_related("workspace").first()


def _by_name(workspace: Workspace, name: str):
    return Compute.objects.filter(workspace=workspace, name__lower=name.lower())


def create_or_update(workspace: Workspace, name: str, data: dict, principal: str, check):
    """PUT: attach the cluster, or replace its settings (location is fixed)."""
    return upsert(
        _by_name(workspace, name),
        check,
        principal,
        _values(data),
        new=lambda: {"workspace": workspace, "name": name},
        fixed=(
            Fixed("location", data["location"], "location"),
            # What runs there depends on it: a cluster does not turn into another kind.
            Fixed("compute_type", data["compute_type"], "properties.computeType"),
        ),
    )


def named(workspace: Workspace, reference: str | None) -> Compute | None:
    """The compute an endpoint's ``compute`` names: ``name``, ``azureml:name`` or its ARM id."""
    if not reference:
        return None
    name = reference.removeprefix("azureml:").rstrip("/").rsplit("/computes/", 1)[-1]
    return _by_name(workspace, name).first()


# Other apps' uses of a compute (batch deployments, ...): functions of a compute returning
# descriptions such as "batch deployment 'e/d'"; each app adds its own when it is ready.
USERS: list[Callable[[Compute], list[str]]] = []


def _online_users(compute: Compute) -> list[str]:
    return [
        f"online endpoint '{endpoint.name}'"
        for endpoint in OnlineEndpoint.objects.filter(workspace=compute.workspace)
        if endpoint.compute and named(compute.workspace, endpoint.compute) == compute
    ]


def delete(compute: Compute, principal: str, check) -> None:
    """Refused while an endpoint sends its deployments there."""
    with transaction.atomic():
        compute = lock(compute, check)
        users = sorted(user for find in (_online_users, *USERS) for user in find(compute))
        if users:
            raise conflict(f"Compute '{compute.name}' is used by {', '.join(users)}.")
        compute.delete()
