"""Starting operations and handing them to the workers."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane.core.choices import OperationKind, OperationStatus
from controlplane.core.models import Operation

log = logging.getLogger(__name__)

# The worker task that carries out each kind of operation (see workers/tasks/).
TASK_FOR_KIND = {
    OperationKind.CREATE_OR_UPDATE_ENDPOINT: "weir.apply_endpoint",
    OperationKind.UPDATE_ENDPOINT: "weir.apply_endpoint",
    OperationKind.DELETE_ENDPOINT: "weir.delete_endpoint",
    OperationKind.CREATE_OR_UPDATE_DEPLOYMENT: "weir.apply_deployment",
    OperationKind.UPDATE_DEPLOYMENT: "weir.apply_deployment",
    OperationKind.SCALE_DEPLOYMENT: "weir.apply_deployment",
    OperationKind.DELETE_DEPLOYMENT: "weir.delete_deployment",
}


def lease_deadline():
    return timezone.now() + timezone.timedelta(seconds=settings.WEIR_OPERATION_LEASE_SECONDS)


def start(kind: str, *, resource, principal: str, result_status: int = 200) -> Operation:
    """Record an operation on ``resource`` (an endpoint or deployment) and enqueue its task
    once the surrounding transaction commits, so the worker always sees the new state."""
    from controlplane.core.models import OnlineDeployment

    is_deployment = isinstance(resource, OnlineDeployment)
    endpoint = resource.endpoint if is_deployment else resource
    operation = Operation.objects.create(
        kind=kind,
        subscription_id=endpoint.workspace.subscription_id,
        location=settings.WEIR_LOCATION,
        resource_id=resource.arm_id,
        endpoint=endpoint,
        deployment=resource if is_deployment else None,
        result_status=result_status,
        created_by=principal,
        lease_expires_at=lease_deadline(),
    )
    transaction.on_commit(lambda: enqueue(operation))
    return operation


def enqueue(operation: Operation) -> None:
    """Send the operation's task. If the broker is down the operation stays InProgress and
    the reconciler sends it again once its lease lapses."""
    from workers.celery_app import app

    try:
        app.send_task(TASK_FOR_KIND[operation.kind], kwargs={"operation_id": str(operation.id)})
    except Exception:  # noqa: BLE001 - any broker failure is retried by the reconciler
        log.exception("could not enqueue operation %s; the reconciler will retry", operation.id)


def running_for(resource) -> Operation | None:
    """The operation in progress on ``resource``, if any (a repeated DELETE answers with it)."""
    return (
        Operation.objects.filter(
            resource_id__iexact=resource.arm_id, status=OperationStatus.IN_PROGRESS
        )
        .order_by("-started_at")
        .first()
    )
