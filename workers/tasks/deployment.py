"""Deployment operations: apply (create, update, scale) and delete, on the backend."""

from __future__ import annotations

import logging
import shutil
import time

from django.conf import settings
from django.db import transaction

from controlplane.core import states
from controlplane.core.choices import ContainerType, OperationStatus
from controlplane.core.choices import DeploymentProvisioningState as State
from controlplane.core.models import OnlineDeployment
from controlplane.core.services import logs, routing
from workers import environments, provisioning
from workers.backends import backend, cluster_for, on_kubernetes
from workers.backends.kubernetes import object_name
from workers.builders import image as images
from workers.decorators import provisioning_task
from workers.errors import PermanentError
from workers.tasks.base import cancel, claim, failing_to, progress, refresh_lease

log = logging.getLogger(__name__)

APPLYING = frozenset({State.CREATING, State.UPDATING, State.SCALING})
POLL = 0.25
LEASE_REFRESH = 5.0
# How long the backend may take to notice a new spec before the agent counts as missing.
BACKEND_TIMEOUT = 60.0


@provisioning_task("weir.apply_deployment")
def apply_deployment(self, *, operation_id: str) -> None:
    """Expects the deployment Creating, Updating or Scaling; leaves it Succeeded (or Failed).

    Resolve model, code and environment -> build or reuse the environment -> place the files
    -> apply the replica plan to the backend -> wait until instanceCount replicas of this
    revision are ready and no others are left. Each step goes to the deployment's
    StorageInitializer log, which getLogs returns.
    """
    operation = claim(operation_id)
    if operation is None:
        return
    deployment = operation.deployment
    if deployment is None or deployment.provisioning_state not in APPLYING:
        cancel(operation, "The deployment was deleted or changed by a later operation.")
        return

    lease_refreshed = [time.monotonic()]

    def say(line: str) -> None:
        logs.append(deployment.id, ContainerType.STORAGE_INITIALIZER, line)
        # A long build keeps writing lines; keep the operation's lease alive meanwhile so
        # the reconciler does not take this worker for dead.
        if time.monotonic() - lease_refreshed[0] > LEASE_REFRESH:
            refresh_lease(operation)
            lease_refreshed[0] = time.monotonic()

    with failing_to(operation, OnlineDeployment, deployment.pk):
        say(f"{operation.kind} {deployment.arm_id} (operation {operation.pk})")
        assets = provisioning.Assets(deployment)
        say(f"model: {deployment.model or '-'}")
        say(f"code: {assets.code}; environment: {assets.environment}")
        progress(operation, 10.0)
        if on_kubernetes(deployment):
            revision, status = _apply_to_cluster(deployment, assets, operation, say)
        else:
            revision, status = _apply_locally(deployment, assets, operation, say)
        wait_until_ready(operation, deployment, revision, say, status)
        with transaction.atomic():
            done = states.transition(
                OnlineDeployment, deployment.pk, State.SUCCEEDED, expected=APPLYING
            )
            if done:
                states.finish_operation(operation.pk, OperationStatus.SUCCEEDED)
            else:
                cancel(operation, "The deployment was changed by a later operation.")
        say("Succeeded" if done else "Canceled by a later operation")
        routing.publish(deployment.endpoint_id)
        if not on_kubernetes(deployment):
            _forget_other_revisions(deployment, revision)


def _apply_locally(deployment, assets, operation, say):
    """Build or reuse the venv, place the files, hand the agent its replica plan."""
    environment_dir, environment_hash = provisioning.environment_dir(assets, say)
    progress(operation, 40.0)
    revision = provisioning.revision(deployment, assets, environment_hash)
    directory = provisioning.deployment_dir(deployment) / revision
    model_dir, code_dir = provisioning.place(assets, directory, say)
    progress(operation, 60.0)
    spec = provisioning.agent_spec(
        deployment, assets, environment_dir, revision, model_dir, code_dir, str(operation.pk)
    )
    say(f"revision {revision}: {spec.replicas} replica(s)")
    backend().apply(spec)
    return revision, lambda: backend().status(str(deployment.id))


def _apply_to_cluster(deployment, assets, operation, say):
    """Find or build the environment's image, apply Deployment and Service to the cluster
    of the endpoint's compute."""
    cluster, namespace = cluster_for(deployment)
    spec = environments.spec_for(assets.environment)
    image = images.ensure_image(spec, say)
    progress(operation, 40.0)
    revision = provisioning.revision(deployment, assets, spec.content_hash())
    plan = provisioning.kubernetes_plan(deployment, assets, image, revision, namespace)
    say(f"revision {revision}: {plan.replicas} pod(s) of {image} in namespace {namespace}")
    cluster.apply(plan)
    progress(operation, 60.0)
    return revision, lambda: cluster.status(namespace, str(deployment.id))


def wait_until_ready(operation, deployment, revision: str, say, status_of) -> None:
    """Block until the backend reports the revision rolled out; PermanentError when a
    replica cannot start, the backend never answers, or the wait passes WEIR_READY_TIMEOUT."""
    started = time.monotonic()
    deadline = started + settings.WEIR_READY_TIMEOUT
    last, reported_at = None, 0.0
    while time.monotonic() < deadline:
        status = status_of()
        seen = status is not None and status.revision == revision
        if not seen and time.monotonic() - started > BACKEND_TIMEOUT:
            hint = (
                "is the cluster scheduling its pods?"
                if on_kubernetes(deployment)
                else "is the agent, python -m dataplane.agent, running?"
            )
            raise PermanentError(
                "BackendUnavailable",
                f"the backend did not take up revision {revision} within "
                f"{BACKEND_TIMEOUT:.0f}s ({hint})",
            )
        if seen and status.failure:
            tail = status.failure.get("logTail", "")
            say(status.failure["message"])
            for line in tail.splitlines():
                say(f"  | {line}")
            raise PermanentError(
                "ReplicaStartFailed",
                f"{status.failure['message']}: {_last_error(tail)}",
                details=[{"code": "InferenceServerLog", "message": tail}],
            )
        if seen and status.rolled_out(revision, deployment.instance_count):
            say(f"{status.ready} replica(s) ready")
            return
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
        time.sleep(POLL)
    raise PermanentError(
        "ReadinessTimeout",
        f"replicas were not ready within {settings.WEIR_READY_TIMEOUT} seconds",
    )


def _last_error(log_tail: str) -> str:
    lines = [line for line in log_tail.splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "Exception" in line]
    return (errors or lines or ["no output"])[-1].strip()


def _forget_other_revisions(deployment, revision: str) -> None:
    root = provisioning.deployment_dir(deployment)
    for directory in root.glob("*"):
        if directory.name != revision:
            shutil.rmtree(directory, ignore_errors=True)


def remove_replicas(deployment) -> None:
    """Stop what runs the deployment: its pods in the cluster, or its local replicas and
    their files."""
    if on_kubernetes(deployment):
        try:
            cluster, namespace = cluster_for(deployment)
        except PermanentError:
            return  # no compute attached: nothing of it was ever applied to a cluster
        cluster.delete(namespace, object_name(deployment.endpoint.name, deployment.name))
    else:
        stop_replicas(str(deployment.id))
        shutil.rmtree(provisioning.deployment_dir(deployment), ignore_errors=True)


def stop_replicas(deployment_id: str, timeout: float = 60.0) -> None:
    """Delete the deployment from the backend and wait until its replicas are gone."""
    backend().delete(deployment_id)
    deadline = time.monotonic() + timeout
    while not backend().gone(deployment_id):
        if time.monotonic() > deadline:
            raise PermanentError("StopTimeout", f"replicas still running after {timeout:.0f}s")
        time.sleep(POLL)


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
