"""Starting operations and handing them to the workers."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from controlplane import tasks
from controlplane.core.choices import OperationKind, OperationStatus
from controlplane.core.models import Operation

log = logging.getLogger(__name__)

# The worker task that carries out each kind of operation (see workers/tasks/).
TASK_FOR_KIND = {
    OperationKind.CREATE_OR_UPDATE_ENDPOINT: tasks.APPLY_ENDPOINT,
    OperationKind.UPDATE_ENDPOINT: tasks.APPLY_ENDPOINT,
    OperationKind.DELETE_ENDPOINT: tasks.DELETE_ENDPOINT,
    OperationKind.CREATE_OR_UPDATE_DEPLOYMENT: tasks.APPLY_DEPLOYMENT,
    OperationKind.UPDATE_DEPLOYMENT: tasks.APPLY_DEPLOYMENT,
    OperationKind.SCALE_DEPLOYMENT: tasks.SCALE_DEPLOYMENT,
    OperationKind.DELETE_DEPLOYMENT: tasks.DELETE_DEPLOYMENT,
}


def lease_deadline():
    return timezone.now() + timezone.timedelta(seconds=settings.WEIR_OPERATION_LEASE_SECONDS)


def start(
    kind: str, *, resource, principal: str, result_status: int = 200, enqueue_task: bool = True
) -> Operation:
    """Record an operation on ``resource`` (an endpoint or deployment) and enqueue its task
    once the surrounding transaction commits, so the worker always sees the new state. A
    worker that runs the operation itself passes ``enqueue_task=False``."""
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
    if enqueue_task:
        transaction.on_commit(lambda: enqueue(operation))
    return operation


def finished(
    kind: str, *, resource_id: str, subscription_id: str, principal: str, result_status: int = 200
) -> Operation:
    """Record an operation whose work was done in the request: it answers Succeeded from
    the start, for clients that poll every write of a resource Azure runs long."""
    now = timezone.now()
    return Operation.objects.create(
        kind=kind,
        status=OperationStatus.SUCCEEDED,
        subscription_id=subscription_id,
        location=settings.WEIR_LOCATION,
        resource_id=resource_id,
        percent_complete=100.0,
        result_status=result_status,
        created_by=principal,
        ended_at=now,
        lease_expires_at=now,
    )


def enqueue(operation: Operation) -> None:
    """Send the operation's task. If the broker is down the operation stays InProgress and
    the reconciler sends it again once its lease lapses."""
    try:
        tasks.send(TASK_FOR_KIND[operation.kind], operation_id=str(operation.id))
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
