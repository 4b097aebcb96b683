"""Deployment operations: apply (create, update, scale) and delete."""

from __future__ import annotations

import logging

from django.db import transaction

from controlplane.core import states
from controlplane.core.choices import ContainerType, OperationStatus
from controlplane.core.choices import DeploymentProvisioningState as State
from controlplane.core.models import OnlineDeployment
from controlplane.core.services import logs
from workers.decorators import provisioning_task
from workers.tasks.base import cancel, claim, failing_to, progress

log = logging.getLogger(__name__)

APPLYING = frozenset({State.CREATING, State.UPDATING, State.SCALING})


@provisioning_task("weir.apply_deployment")
def apply_deployment(self, *, operation_id: str) -> None:
    """Expects the deployment Creating, Updating or Scaling; leaves it Succeeded (or Failed).

    Each step is written to the deployment's StorageInitializer log, which getLogs returns.
    """
    operation = claim(operation_id)
    if operation is None:
        return
    deployment = operation.deployment
    if deployment is None or deployment.provisioning_state not in APPLYING:
        cancel(operation, "The deployment was deleted or changed by a later operation.")
        return
    say = lambda line: logs.append(deployment.id, ContainerType.STORAGE_INITIALIZER, line)  # noqa: E731
    with failing_to(operation, OnlineDeployment, deployment.pk):
        say(f"{operation.kind} {deployment.arm_id} (operation {operation.pk})")
        say(f"model: {deployment.model or '-'}")
        say(f"environment: {deployment.environment_id or '-'}")
        code = (deployment.code_configuration or {}).get("codeId") or "-"
        say(f"code: {code}")
        progress(operation, 50.0)
        say(f"instance count: {deployment.instance_count}")
        with transaction.atomic():
            done = states.transition(
                OnlineDeployment, deployment.pk, State.SUCCEEDED, expected=APPLYING
            )
            if done:
                states.finish_operation(operation.pk, OperationStatus.SUCCEEDED)
            else:
                cancel(operation, "The deployment was changed by a later operation.")
        say("Succeeded" if done else "Canceled by a later operation")


@provisioning_task("weir.delete_deployment")
def delete_deployment(self, *, operation_id: str) -> None:
    """Expects the deployment Deleting; removes it."""
    operation = claim(operation_id)
    if operation is None:
        return
    deployment = operation.deployment
    if deployment is None:
        states.finish_operation(operation.pk, OperationStatus.SUCCEEDED)
        return
    with failing_to(operation, OnlineDeployment, deployment.pk):
        with transaction.atomic():
            OnlineDeployment.objects.filter(
                pk=deployment.pk, provisioning_state=State.DELETING
            ).delete()
            states.finish_operation(operation.pk, OperationStatus.SUCCEEDED)
        log.info("deployment %s deleted", operation.resource_id)
