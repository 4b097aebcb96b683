"""Deployment operations: apply (create, update), scale and delete, on the deployment's
backend."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.db import transaction

from controlplane.core import states
from controlplane.core.choices import ContainerType, OperationStatus
from controlplane.core.choices import DeploymentProvisioningState as State
from controlplane.core.models import OnlineDeployment, Operation
from controlplane.core.services import logs, routing
from workers import replica_plan
from workers.backends import Backend, BackendStatus, backend_for
from workers.decorators import build_task, provisioning_task, query_task
from workers.errors import PermanentError, last_error
from workers.tasks.base import (
    Superseded,
    cancel,
    claim,
    ensure_running,
    failing_to,
    progress,
    refresh_lease,
    still_running,
)

log = logging.getLogger(__name__)

APPLYING = frozenset({State.CREATING, State.UPDATING, State.SCALING})
LEASE_REFRESH = 5.0
# How long the backend may take to notice a new spec before the agent counts as missing.
BACKEND_TIMEOUT = 60.0


@build_task("weir.apply_deployment")
def apply_deployment(self, *, operation_id: str) -> None:
    """Expects the deployment Creating or Updating; leaves it Succeeded (or Failed).

    Resolve model, code and environment -> build or reuse the environment (venv or image)
    -> place the files -> apply the replica plan to the backend -> wait until instanceCount
    replicas of this revision are ready and no others are left. Each step goes to the
    deployment's StorageInitializer log, which getLogs returns. Runs on the builds queue:
    a long build never holds up a scale or a delete.
    """
    operation, deployment = _start(operation_id)
    if operation is None:
        return
    with failing_to(operation, OnlineDeployment, deployment.pk):
        say = _logger(operation, deployment)
        backend = backend_for(deployment)
        revision = _apply(operation, deployment, backend, say)
        _finish(operation, deployment, backend, revision, say)


@provisioning_task("weir.scale_deployment")
def scale_deployment(self, *, operation_id: str) -> None:
    """Expects the deployment Scaling; leaves it Succeeded (or Failed).

    Only the replica count changes: nothing is resolved, built or placed again, unless the
    backend has never run the deployment (then it is applied in full)."""
    operation, deployment = _start(operation_id)
    if operation is None:
        return
    run_scale(operation, deployment)


def run_scale(operation: Operation, deployment: OnlineDeployment) -> None:
    """The body of a scale operation (also run inline by an autoscale decision)."""
    with failing_to(operation, OnlineDeployment, deployment.pk):
        say = _logger(operation, deployment)
        backend = backend_for(deployment)
        say(f"scaling to {deployment.instance_count} replica(s)")
        ensure_running(operation)
        revision = backend.scale(str(deployment.id), deployment.instance_count)
        if revision is None:
            say("the backend runs nothing of this deployment yet: applying it in full")
            revision = _apply(operation, deployment, backend, say)
        _finish(operation, deployment, backend, revision, say)


def _start(operation_id: str) -> tuple[Operation | None, OnlineDeployment | None]:
    operation = claim(operation_id)
    if operation is None:
        return None, None
    deployment = operation.deployment
    if deployment is None or deployment.provisioning_state not in APPLYING:
        cancel(operation, "The deployment was deleted or changed by a later operation.")
        return None, None
    return operation, deployment


def _logger(operation: Operation, deployment: OnlineDeployment) -> Callable[[str], None]:
    """The step logger of one operation run: its lines go to the deployment's
    StorageInitializer log, the first naming the operation."""
    lease_refreshed = [time.monotonic()]

    def say(line: str) -> None:
        logs.append(deployment.id, ContainerType.STORAGE_INITIALIZER, line)
        # A long build keeps writing lines; keep the operation's lease alive meanwhile so
        # the reconciler does not take this worker for dead.
        if time.monotonic() - lease_refreshed[0] > LEASE_REFRESH:
            refresh_lease(operation)
            lease_refreshed[0] = time.monotonic()

    say(f"{operation.kind} {deployment.arm_id} (operation {operation.pk})")
    return say


def _apply(operation: Operation, deployment: OnlineDeployment, backend: Backend, say) -> str:
    """Resolve, prepare and apply the full replica plan; returns its revision."""
    assets = replica_plan.Assets(deployment)
    say(f"model: {deployment.model or '-'}")
    say(str(assets))
    progress(operation, 10.0)
    plan = backend.prepare(deployment, assets, say)
    progress(operation, 50.0)
    say(f"revision {plan.revision}: {plan.replicas} replica(s)")
    ensure_running(operation)  # a build can outlive its lease: never apply a stale plan
    backend.apply(plan)
    progress(operation, 60.0)
    return plan.revision


def _finish(
    operation: Operation, deployment: OnlineDeployment, backend: Backend, revision: str, say
) -> None:
    """Wait for the rollout; then, in one transaction, Succeeded and the route the router
    is to serve (settings as applied, addresses as observed); then publish it."""
    status = wait_until_ready(operation, deployment, backend, revision, say)
    with transaction.atomic():
        if not still_running(operation):
            raise Superseded(str(operation.pk))
        done = states.transition(
            OnlineDeployment, deployment.pk, State.SUCCEEDED, expected=APPLYING
        )
        if done:
            routing.record_route(deployment, status.ready_addresses())
            states.finish_operation(operation.pk, OperationStatus.SUCCEEDED)
        else:
            cancel(operation, "The deployment was changed by a later operation.")
    say("Succeeded" if done else "Canceled by a later operation")
    routing.publish(deployment.endpoint_id)
    backend.rolled_out(str(deployment.id), revision)


def wait_until_ready(
    operation: Operation, deployment: OnlineDeployment, backend: Backend, revision: str, say
) -> BackendStatus:
    """Block until the backend reports the revision rolled out and return that status;
    PermanentError when a replica cannot start, the backend never answers, or the wait
    passes WEIR_READY_TIMEOUT."""
    started = time.monotonic()
    deadline = started + settings.WEIR_READY_TIMEOUT
    last, reported_at = None, 0.0
    while time.monotonic() < deadline:
        status = backend.status(str(deployment.id))
        if routing.follow_rollout(deployment, status):
            routing.publish(deployment.endpoint_id)
        seen = status is not None and status.revision == revision
        if not seen and time.monotonic() - started > BACKEND_TIMEOUT:
            raise PermanentError(
                "BackendUnavailable",
                f"the backend did not take up revision {revision} within "
                f"{BACKEND_TIMEOUT:.0f}s ({backend.unavailable_hint})",
            )
        if seen and status.failure:
            tail = status.failure.get("logTail", "")
            say(status.failure["message"])
            for line in tail.splitlines():
                say(f"  | {line}")
            raise PermanentError(
                "ReplicaStartFailed",
                f"{status.failure['message']}: {last_error(tail)}",
                details=[{"code": "InferenceServerLog", "message": tail}],
            )
        if seen and status.rolled_out(revision, deployment.instance_count):
            say(f"{status.ready} replica(s) ready")
            return status
        changed = seen and (status.ready, len(status.replicas)) != last
        if changed:
            last = (status.ready, len(status.replicas))
            say(f"{status.ready} of {deployment.instance_count} replica(s) ready")
        # Progress also extends the operation's lease: report on change and every few
        # seconds while waiting, not on every poll.
        if changed or time.monotonic() - reported_at > LEASE_REFRESH:
            ready = status.ready if seen else 0
            progress(operation, 60.0 + 35.0 * min(ready / max(deployment.instance_count, 1), 1))
            reported_at = time.monotonic()
        time.sleep(backend.status_poll)
    raise PermanentError(
        "ReadinessTimeout",
        f"replicas were not ready within {settings.WEIR_READY_TIMEOUT} seconds",
    )


def remove_replicas(deployment: OnlineDeployment) -> None:
    """Stop what runs the deployment, wherever it runs."""
    try:
        backend = backend_for(deployment)
    except PermanentError:
        return  # no compute attached: nothing of it was ever applied to a cluster
    backend.delete(str(deployment.id))


@provisioning_task("weir.delete_deployment")
def delete_deployment(self, *, operation_id: str) -> None:
    """Expects the deployment Deleting; stops its replicas, frees its files, removes it."""
    operation = claim(operation_id)
    if operation is None:
        return
    deployment = operation.deployment
    if deployment is None:
        states.finish_operation(operation.pk, OperationStatus.SUCCEEDED)
        return
    with failing_to(operation, OnlineDeployment, deployment.pk):
        remove_replicas(deployment)
        with transaction.atomic():
            OnlineDeployment.objects.filter(
                pk=deployment.pk, provisioning_state=State.DELETING
            ).delete()
            states.finish_operation(operation.pk, OperationStatus.SUCCEEDED)
        routing.publish(deployment.endpoint_id)
        log.info("deployment %s deleted", operation.resource_id)


@query_task("weir.deployment_logs")
def deployment_logs(*, deployment_id: str, tail: int | None) -> str:
    """The replicas' output, read from wherever they run (getLogs InferenceServer)."""
    deployment = OnlineDeployment.objects.select_related("endpoint__workspace").get(
        pk=deployment_id
    )
    return backend_for(deployment).logs(deployment_id, tail)
