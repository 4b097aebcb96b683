"""Online endpoint writes: create or replace, patch, delete, keys."""

from __future__ import annotations

import time

from django.db import transaction

from contracts.comparison import DEFAULT, MirrorComparison
from contracts.routing import PRIMARY_KEY, SECONDARY_KEY
from controlplane.arm.errors import ArmError, conflict
from controlplane.core import states
from controlplane.core.choices import KeyType, OperationKind, ProvisioningState
from controlplane.core.models import OnlineEndpoint, Operation
from controlplane.core.models.base import new_etag
from controlplane.core.models.endpoint import scoring_host
from controlplane.core.services import keys, operations, routing
from controlplane.core.services.rows import SAYS_CURRENT, Fixed, lock, save_changes, upsert

# Columns a PUT sets; a PUT that changes none of them is a no-op.
ENDPOINT_FIELDS = (
    "tags",
    "kind",
    "identity",
    "auth_mode",
    "description",
    "properties",
    "traffic",
    "mirror_traffic",
    "mirror_comparison",
    "public_network_access",
    "compute",
)


def normalize(data: dict) -> dict:
    values = {field: data.get(field) for field in ENDPOINT_FIELDS}
    for field in ("tags", "properties", "traffic", "mirror_traffic"):
        values[field] = values[field] or {}
    # Zero weights carry no meaning; dropping them keeps the same PUT idempotent.
    values["mirror_traffic"] = {k: v for k, v in values["mirror_traffic"].items() if v}
    # The default rule is stored as null, however it was written.
    if MirrorComparison.from_wire(values["mirror_comparison"]) in (None, DEFAULT):
        values["mirror_comparison"] = None
    return values


def find(workspace, name: str) -> OnlineEndpoint | None:
    return _by_name(workspace, name).select_related("workspace").first()


def _by_name(workspace, name: str):
    return OnlineEndpoint.objects.filter(workspace=workspace, name__lower=name.lower())


def create_or_update(
    workspace, name: str, data: dict, principal: str, check_preconditions
) -> tuple[OnlineEndpoint, bool, Operation | None]:
    """PUT: create the endpoint (Creating) or replace its settings (Updating).

    Returns the endpoint, whether it was created, and the operation (None when the PUT
    changed nothing, so the same PUT twice starts one operation)."""

    def new() -> dict:
        host = scoring_host(name, workspace.name)
        if OnlineEndpoint.objects.filter(scoring_host=host).exists():
            raise conflict(
                f"The scoring host {host} belongs to an endpoint in another workspace of "
                "the same name; choose another endpoint name.",
                "endpointName",
            )
        initial_keys = data.get("keys") or {}
        return {
            "workspace": workspace,
            "name": name,
            "scoring_host": host,
            "primary_key": initial_keys.get("primaryKey") or keys.generate_key(),
            "secondary_key": initial_keys.get("secondaryKey") or keys.generate_key(),
            "provisioning_state": ProvisioningState.CREATING,
        }

    def update(endpoint: OnlineEndpoint, values: dict) -> Operation | None:
        if "mirror_comparison" not in data:
            # Weir's own field: a PUT from a client that does not know it keeps it (null
            # sets the default rule).
            values = {**values, "mirror_comparison": endpoint.mirror_comparison}
        unchanged = all(getattr(endpoint, f) == v for f, v in values.items())
        if unchanged and endpoint.provisioning_state == ProvisioningState.SUCCEEDED:
            return None
        states.check_edge(endpoint.provisioning_state, ProvisioningState.UPDATING)
        save_changes(
            endpoint, principal, {**values, "provisioning_state": ProvisioningState.UPDATING}
        )
        return apply(endpoint)

    def apply(endpoint: OnlineEndpoint) -> Operation:
        return operations.start(
            OperationKind.CREATE_OR_UPDATE_ENDPOINT, resource=endpoint, principal=principal
        )

    return upsert(
        _by_name(workspace, name),
        check_preconditions,
        principal,
        normalize(data),
        new=new,
        fixed=(Fixed("location", data["location"], "location", SAYS_CURRENT),),
        update=update,
        on_create=apply,
    )


def patch(endpoint: OnlineEndpoint, data: dict, principal: str, check_preconditions) -> None:
    """PATCH: tags replace the whole map; identity replaces the identity. No work to run,
    so it answers synchronously."""
    with transaction.atomic():
        endpoint = lock(endpoint, check_preconditions)
        # Tags and identity are metadata: they may change while an operation runs,
        # but not once the endpoint is going away.
        if endpoint.provisioning_state == ProvisioningState.DELETING:
            raise states.IllegalTransition(endpoint.provisioning_state, "Updating")
        if "tags" in data:
            endpoint.tags = data["tags"] or {}
        if "identity" in data:
            endpoint.identity = data["identity"]
        save_changes(endpoint, principal)


def delete(endpoint: OnlineEndpoint, principal: str, check_preconditions) -> Operation:
    """DELETE: the endpoint and all its deployments go to Deleting; a worker removes them."""
    with transaction.atomic():
        endpoint = lock(endpoint, check_preconditions)
        if endpoint.provisioning_state == ProvisioningState.DELETING:
            running = operations.running_for(endpoint)
            if running is not None:
                return running
        else:
            states.check_edge(endpoint.provisioning_state, ProvisioningState.DELETING)
        endpoint.provisioning_state = ProvisioningState.DELETING
        save_changes(endpoint, principal)
        host = routing.host_of(endpoint)
        transaction.on_commit(lambda: routing.unpublish(host))
        for deployment in endpoint.deployments.select_for_update():
            if deployment.provisioning_state != ProvisioningState.DELETING:
                states.transition(type(deployment), deployment.pk, ProvisioningState.DELETING)
        return operations.start(
            OperationKind.DELETE_ENDPOINT, resource=endpoint, principal=principal, result_status=204
        )


def regenerate_key(
    endpoint: OnlineEndpoint, key_type: str, key_value: str | None, overlap_seconds: int = 0
) -> None:
    """Replace the primary or secondary key; the other keeps working. With
    ``overlap_seconds`` the replaced key keeps working too, for that long (its digest and
    the window's end go to the router, which refuses it once the window ends); without,
    it is refused at once. Keys retired earlier keep their own windows."""
    if endpoint.auth_mode != "Key":
        raise ArmError(
            400,
            "BadArgument",
            "Keys can be regenerated only for authMode Key; "
            f"this endpoint uses {endpoint.auth_mode}.",
            "authMode",
        )
    field = "primary_key" if key_type == KeyType.PRIMARY else "secondary_key"
    with transaction.atomic():
        locked = OnlineEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        # Azure's SDK sends the key it read back as keyValue and expects a new one: only a
        # value other than the current key is taken as the new key.
        if key_value == getattr(locked, field):
            key_value = None
        now = time.time()
        retired = [k for k in locked.retired_keys if k["expiresAt"] > now]
        if overlap_seconds:
            retired.append(
                {
                    "digest": routing.key_digest(getattr(locked, field)),
                    "credential": PRIMARY_KEY if key_type == KeyType.PRIMARY else SECONDARY_KEY,
                    "expiresAt": now + overlap_seconds,
                }
            )
        locked.retired_keys = retired
        setattr(locked, field, key_value or keys.generate_key())
        locked.etag = new_etag()
        locked.save(update_fields=[field, "retired_keys", "etag", "modified_at"])
        # The router must refuse the old key at once (or at the end of its window), not at
        # the next reconcile.
        routing.publish_on_commit(locked.pk)
