"""Compute writes (synchronous: attaching a cluster provisions nothing), and which compute an
endpoint names."""

from __future__ import annotations

from django.db import transaction

from controlplane.arm.errors import bad_request, conflict
from controlplane.core.models import Compute, OnlineEndpoint, Workspace
from controlplane.core.services.rows import create_or_conflict, save_changes

FIELDS = ("tags", "compute_type", "description", "resource_id", "namespace", "properties")


def _values(data: dict) -> dict:
    values = {field: data.get(field) for field in FIELDS}
    values["tags"] = values["tags"] or {}
    values["namespace"] = values["namespace"] or "default"
    values["properties"] = {k: v for k, v in (values["properties"] or {}).items() if v is not None}
    return values


def create_or_update(workspace: Workspace, name: str, data: dict, principal: str, check):
    values = _values(data)
    with transaction.atomic():
        compute = (
            Compute.objects.select_for_update()
            .filter(workspace=workspace, name__iexact=name)
            .first()
        )
        check(compute.etag if compute else None)
        if compute is None:
            compute = create_or_conflict(
                Compute,
                workspace=workspace,
                name=name,
                location=data["location"],
                created_by=principal,
                modified_by=principal,
                **values,
            )
            return compute, True
        if data["location"].lower() != compute.location.lower():
            raise bad_request("location cannot change after creation.", "location")
        save_changes(compute, principal, values)
        return compute, False


def named(workspace: Workspace, reference: str | None) -> Compute | None:
    """The compute an endpoint's ``compute`` names: ``name``, ``azureml:name`` or its ARM id."""
    if not reference:
        return None
    name = reference.removeprefix("azureml:").rstrip("/").rsplit("/computes/", 1)[-1]
    return Compute.objects.filter(workspace=workspace, name__iexact=name).first()


def delete(compute: Compute, check) -> None:
    """Refused while an endpoint sends its deployments there."""
    with transaction.atomic():
        compute = Compute.objects.select_for_update().get(pk=compute.pk)
        check(compute.etag)
        users = sorted(
            endpoint.name
            for endpoint in OnlineEndpoint.objects.filter(workspace=compute.workspace)
            if endpoint.compute and named(compute.workspace, endpoint.compute) == compute
        )
        if users:
            raise conflict(
                f"Compute '{compute.name}' is used by online endpoint(s) {', '.join(users)}."
            )
        compute.delete()
