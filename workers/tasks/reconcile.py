"""The reconciler: re-drives operations whose worker stopped reporting, and keeps the
router's table in step with the replicas that run."""

from __future__ import annotations

import logging

from django.utils import timezone

from controlplane.core.choices import DeploymentProvisioningState, OperationStatus
from controlplane.core.models import OnlineDeployment, OnlineEndpoint, Operation
from controlplane.core.services import routing
from controlplane.core.services.operations import enqueue, lease_deadline
from workers.backends import backend_for
from workers.decorators import periodic_task
from workers.errors import PermanentError
from workers.tasks.base import fail_operation

log = logging.getLogger(__name__)

# After this many deliveries an operation is failed rather than retried forever.
MAX_ATTEMPTS = 5
# Deployments no operation is changing: their replicas are observed every tick.
SETTLED = (DeploymentProvisioningState.SUCCEEDED, DeploymentProvisioningState.FAILED)


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


@periodic_task("weir.reconcile_batch_jobs")
def reconcile_batch_jobs() -> int:
    """Batch jobs whose worker stopped extending their lease (it died, or the broker lost
    the task) are claimed and enqueued again: the next run resumes from the job's ledger.
    Returns how many."""
    from controlplane.batch import jobs, states
    from controlplane.batch.models import BatchJob

    redriven = 0
    lapsed = BatchJob.objects.exclude(status__in=states.TERMINAL).filter(
        lease_expires_at__lt=timezone.now()
    )
    for job in lapsed[:100]:
        claimed = BatchJob.objects.filter(pk=job.pk, lease_expires_at=job.lease_expires_at).update(
            lease_expires_at=jobs.lease_deadline()
        )
        if claimed == 1:
            log.warning("re-driving batch job %s (%s)", job.name, job.status)
            jobs.enqueue(job)
            redriven += 1
    return redriven


@periodic_task("weir.reconcile_service_operations")
def reconcile_service_operations() -> int:
    """SDK v1 service operations nobody has advanced for a minute (their task was lost)
    are sent again. Returns how many."""
    from controlplane.v1 import webservices

    stale = list(webservices.stale_operations(60).values_list("pk", flat=True)[:100])
    for operation_id in stale:
        log.warning("re-driving service operation %s", operation_id)
        webservices.advance_later(operation_id, 0)
    return len(stale)


def _target(operation: Operation):
    if operation.deployment_id:
        return OnlineDeployment, operation.deployment_id
    return OnlineEndpoint, operation.endpoint_id


@periodic_task("weir.publish_routes")
def publish_routes() -> int:
    """Observe where every settled deployment's ready replicas are (a replica moved, a pod
    replaced), record it, then rebuild the router's table from Postgres: repairs any change
    whose publication was lost (Redis down, a process killed between commit and publish).
    Returns the number of endpoints published."""
    for deployment in OnlineDeployment.objects.select_related("endpoint__workspace").filter(
        provisioning_state__in=SETTLED
    ):
        try:
            status = backend_for(deployment).status(str(deployment.id))
            routing.record_route(deployment, status.ready_addresses() if status else [])
        except PermanentError:
            continue  # no backend can run it (a Kubernetes deployment with no compute)
        except Exception as exc:
            # One unreachable cluster must not stall the others: its routes stay as they
            # were last seen.
            log.warning("replicas of %s not observed: %s", deployment.arm_id, exc)
    return routing.publish_all()
