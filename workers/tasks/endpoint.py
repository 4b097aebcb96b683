"""Endpoint operations: apply (Creating/Updating -> Succeeded) and delete."""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import F

from controlplane.core import states
from controlplane.core.choices import OperationStatus
from controlplane.core.choices import ProvisioningState as State
from controlplane.core.models import OnlineEndpoint
from controlplane.core.services import routing
from workers.decorators import provisioning_task
from workers.tasks.base import Superseded, cancel, claim, failing_to, progress, still_running
from workers.tasks.deployment import remove_replicas

log = logging.getLogger(__name__)


@provisioning_task("weir.apply_endpoint")
def apply_endpoint(self, *, operation_id: str) -> None:
    """Expects the endpoint Creating or Updating; leaves it Succeeded (or Failed).

    An endpoint has nothing to start by itself: its traffic and mirror weights become the
    applied ones, in the transaction that makes it Succeeded, and are published to the
    router's table.
    """
    operation = claim(operation_id)
    if operation is None:
        return
    endpoint = operation.endpoint
    if endpoint is None or endpoint.provisioning_state not in (State.CREATING, State.UPDATING):
        cancel(operation, "The endpoint was deleted or changed by a later operation.")
        return
    with failing_to(operation, OnlineEndpoint, endpoint.pk):
        progress(operation, 50.0)
        with transaction.atomic():
            if not still_running(operation):
                raise Superseded(str(operation.pk))
            done = states.transition(
                OnlineEndpoint,
                endpoint.pk,
                State.SUCCEEDED,
                expected={State.CREATING, State.UPDATING},
            )
            if done:
                # The weights and the mirror comparison take effect here, with Succeeded:
                # nobody publishes them before.
                OnlineEndpoint.objects.filter(pk=endpoint.pk).update(
                    applied_traffic=F("traffic"),
                    applied_mirror_traffic=F("mirror_traffic"),
                    applied_mirror_comparison=F("mirror_comparison"),
                )
                states.finish_operation(operation.pk, OperationStatus.SUCCEEDED)
            else:
                cancel(operation, "The endpoint was changed by a later operation.")
        routing.publish(endpoint.pk)
        log.info("endpoint %s: %s", endpoint.arm_id, "Succeeded" if done else "Canceled")


@provisioning_task("weir.delete_endpoint")
def delete_endpoint(self, *, operation_id: str) -> None:
    """Expects the endpoint Deleting; stops and removes its deployments, then the endpoint."""
    operation = claim(operation_id)
    if operation is None:
        return
    endpoint = operation.endpoint
    if endpoint is None:
        # A previous attempt removed it and died before recording success.
        states.finish_operation(operation.pk, OperationStatus.SUCCEEDED)
        return
    with failing_to(operation, OnlineEndpoint, endpoint.pk):
        deployments = list(endpoint.deployments.all())
        for index, deployment in enumerate(deployments, start=1):
            remove_replicas(deployment)
            deployment.delete()
            progress(operation, 90.0 * index / len(deployments))
        with transaction.atomic():
            OnlineEndpoint.objects.filter(
                pk=endpoint.pk, provisioning_state=State.DELETING
            ).delete()
            states.finish_operation(operation.pk, OperationStatus.SUCCEEDED)
        log.info("endpoint %s deleted", operation.resource_id)
