"""The reconciler: re-drives operations whose worker stopped reporting."""

from __future__ import annotations

import logging

from django.utils import timezone

from controlplane.core.choices import OperationStatus
from controlplane.core.models import Operation
from controlplane.core.services.operations import enqueue, lease_deadline
from workers.decorators import periodic_task
from workers.tasks.base import fail_operation

log = logging.getLogger(__name__)

# After this many deliveries an operation is failed rather than retried forever.
MAX_ATTEMPTS = 5


@periodic_task("weir.reconcile_operations")
def reconcile_operations() -> int:
    """Find running operations whose lease lapsed (their worker died, or the broker lost the
    task), claim each with a conditional UPDATE, and enqueue it again. Returns how many."""
    redriven = 0
    now = timezone.now()
    for operation in Operation.objects.filter(
        status=OperationStatus.IN_PROGRESS, lease_expires_at__lt=now
    )[:100]:
        try:
            if operation.attempts >= MAX_ATTEMPTS:
                model, pk = _target(operation)
                fail_operation(
                    operation,
                    model,
                    pk,
                    {
                        "code": "OperationTimedOut",
                        "message": "The operation did not finish after "
                        f"{operation.attempts} attempts.",
                        "details": [],
                    },
                )
                continue
            # Claim: only one reconciler run may re-drive a given lapse.
            claimed = Operation.objects.filter(
                pk=operation.pk,
                status=OperationStatus.IN_PROGRESS,
                lease_expires_at=operation.lease_expires_at,
            ).update(lease_expires_at=lease_deadline())
            if claimed == 1:
                log.warning("re-driving operation %s (%s)", operation.pk, operation.kind)
                enqueue(operation)
                redriven += 1
        except Exception:
            # One bad row must not stall the loop: push it back and go on.
            log.exception("could not reconcile operation %s", operation.pk)
            Operation.objects.filter(pk=operation.pk).update(lease_expires_at=lease_deadline())
    return redriven


def _target(operation: Operation):
    from controlplane.core.models import OnlineDeployment, OnlineEndpoint

    if operation.deployment_id:
        return OnlineDeployment, operation.deployment_id
    return OnlineEndpoint, operation.endpoint_id


@periodic_task("weir.publish_routes")
def publish_routes() -> int:
    """Rebuild the router's table from Postgres: repairs any change whose publication was
    lost (Redis down, a process killed between commit and publish)."""
    from controlplane.core.services import routing

    return routing.publish_all()
