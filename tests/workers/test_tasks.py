"""The worker tasks, one step at a time: claiming an operation, the guards, turning failures
into ARM errors, scaling, the reconciler and the autoscaler.

These are unit tests of the task logic, so the replicas run in ``RecordingBackend``, an
in-memory ``Backend`` that records the calls it takes and reports the plan it holds as
ready at once. The real local backend and its agent are covered by tests/system and
tests/dataplane; the task bodies are run in this process, as ``run_operations`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.db import OperationalError
from django.test import override_settings
from django.utils import timezone

from contracts.routing import ROUTES, EndpointRoute
from controlplane.core.models import OnlineDeployment, OnlineEndpoint, Operation, ScaleEvent
from controlplane.core.services import routing
from tests.conftest import put_deployment, put_endpoint, run_operations, url
from workers import replica_plan
from workers.backends import local_backend
from workers.backends.base import Backend, BackendStatus
from workers.errors import PermanentError
from workers.tasks import base, deployment, endpoint, reconcile
from workers.tasks.autoscale import autoscale

DEP = "/onlineEndpoints/ep1/deployments/blue"
WRITES = ("prepare", "apply", "scale", "delete")


@dataclass
class RecordedPlan:
    deployment_id: str
    revision: str
    replicas: int


class RecordingBackend(Backend):
    """Replicas kept in memory: what ``apply`` or ``scale`` asked for is ready at once."""

    def __init__(self):
        self.calls: list[str] = []
        self.plans: dict[str, RecordedPlan] = {}
        # Method name -> exception that call raises, e.g. {"prepare": PermanentError(...)}.
        self.raises: dict[str, Exception] = {}
        # Deployments whose status cannot be read (an unreachable cluster).
        self.unreachable: set[str] = set()
        # The host every replica listens on; change it and the replicas have moved.
        self.host = "127.0.0.1"
        # False: replicas start but never pass their readiness probe.
        self.ready = True

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.raises:
            raise self.raises[name]

    def writes(self) -> list[str]:
        return [call for call in self.calls if call in WRITES]

    def prepare(self, deployment, assets, say):
        self._call("prepare")
        revision = replica_plan.revision(deployment, assets, "recorded-environment")
        return RecordedPlan(str(deployment.id), revision, deployment.instance_count)

    def apply(self, plan):
        self._call("apply")
        self.plans[plan.deployment_id] = plan

    def scale(self, deployment_id, replicas):
        self._call("scale")
        plan = self.plans.get(deployment_id)
        if plan is None:
            return None
        plan.replicas = replicas
        return plan.revision

    def status(self, deployment_id):
        self._call("status")
        if deployment_id in self.unreachable:
            raise ConnectionError("the cluster does not answer")
        plan = self.plans.get(deployment_id)
        if plan is None:
            return None
        replicas = [
            {
                "name": f"r{i}",
                "revision": plan.revision,
                "state": "ready" if self.ready else "starting",
                "address": f"{self.host}:{9 + i}",
            }
            for i in range(plan.replicas)
        ]
        ready = plan.replicas if self.ready else 0
        return BackendStatus(plan.revision, plan.replicas, ready, replicas)

    def logs(self, deployment_id, tail):
        self._call("logs")
        return ""

    def delete(self, deployment_id):
        self._call("delete")
        self.plans.pop(deployment_id, None)


@pytest.fixture
def backend(monkeypatch):
    monkeypatch.setattr(RecordingBackend, "status_poll", 0.01)
    with override_settings(
        WEIR_BACKEND="tests.workers.test_tasks.RecordingBackend", WEIR_READY_TIMEOUT=2
    ):
        local_backend.cache_clear()
        yield local_backend()
    local_backend.cache_clear()


@pytest.fixture
def agent(backend):
    """Here the recording backend runs the replicas, not the real agent."""
    return backend


@pytest.fixture
def blue(client, endpoint, backend):
    """A deployment rolled out with two replicas; the backend's calls start empty."""
    assert put_deployment(client, capacity=2).status_code == 201
    run_operations()
    backend.calls.clear()
    return OnlineDeployment.objects.get(name="blue")


def state_of(client, path: str = DEP) -> str:
    return client.get(url(path)).json()["properties"]["provisioningState"]


def operation_status(client, response) -> dict:
    """What the Azure-AsyncOperation URL of a 201/202 ``response`` answers."""
    return client.get(response["Azure-AsyncOperation"].removeprefix("http://testserver")).json()


def published(endpoint_row) -> EndpointRoute:
    """The endpoint's entry in the router's table, as the router reads it."""
    raw = routing.client().hget(ROUTES, routing.host_of(endpoint_row))
    return EndpointRoute.from_json(raw)


def lapse(operation: Operation, **fields) -> None:
    """The operation's worker stopped reporting: its lease ran out a minute ago."""
    past = timezone.now() - timezone.timedelta(minutes=1)
    Operation.objects.filter(pk=operation.pk).update(lease_expires_at=past, **fields)


#
# claim
#
def test_it_does_nothing_for_an_operation_that_already_finished(client, blue, backend):
    (operation,) = Operation.objects.filter(deployment=blue)
    assert operation.status == "Succeeded"

    assert deployment.apply_deployment(operation_id=str(operation.pk)) is None

    again = Operation.objects.get(pk=operation.pk)
    assert (again.status, again.attempts, again.ended_at) == (
        "Succeeded",
        operation.attempts,
        operation.ended_at,
    )
    assert backend.calls == []
    assert state_of(client) == "Succeeded"


def test_it_counts_attempts_and_extends_the_lease_when_claiming(client, endpoint):
    response = put_deployment(client)
    operation = Operation.objects.get(kind="CreateOrUpdateDeployment")
    assert operation.attempts == 0
    lapse(operation)

    before = timezone.now()
    claimed = base.claim(str(operation.pk))
    base.claim(str(operation.pk))

    row = Operation.objects.get(pk=operation.pk)
    assert claimed.pk == operation.pk and row.attempts == 2
    assert row.lease_expires_at > before + timezone.timedelta(seconds=250)
    assert operation_status(client, response)["status"] == "InProgress"


#
# guards
#
def test_it_cancels_a_deployment_operation_whose_deployment_is_no_longer_applying(
    client, endpoint, backend
):
    created = put_deployment(client)
    # Deleted before any worker took the creation up.
    assert client.delete(url(DEP)).status_code == 202

    (operation,) = Operation.objects.filter(kind="CreateOrUpdateDeployment")
    deployment.apply_deployment(operation_id=str(operation.pk))

    status = operation_status(client, created)
    assert status["status"] == "Canceled"
    assert status["error"]["code"] == "Canceled"
    assert backend.writes() == []
    assert state_of(client) == "Deleting"


def test_it_cancels_an_endpoint_operation_whose_endpoint_is_no_longer_applying(client, workspace):
    created = put_endpoint(client)
    assert client.delete(url("/onlineEndpoints/ep1")).status_code == 202

    (operation,) = Operation.objects.filter(kind="CreateOrUpdateEndpoint")
    endpoint.apply_endpoint(operation_id=str(operation.pk))

    status = operation_status(client, created)
    assert status["status"] == "Canceled"
    assert status["error"]["code"] == "Canceled"
    assert state_of(client, "/onlineEndpoints/ep1") == "Deleting"


#
# failures become ARM errors
#
def test_a_permanent_error_fails_the_operation_and_the_deployment_with_its_arm_error(
    client, endpoint, backend
):
    backend.raises["prepare"] = PermanentError("ImageBuildFailed", "pip could not install x")
    response = put_deployment(client)
    run_operations()

    error = {"code": "ImageBuildFailed", "message": "pip could not install x", "details": []}
    assert Operation.objects.get(kind="CreateOrUpdateDeployment").error == error
    status = operation_status(client, response)
    assert status["status"] == "Failed"
    assert {k: status["error"][k] for k in error} == error
    assert state_of(client) == "Failed"
    assert backend.writes() == ["prepare"]


def test_an_unexpected_exception_becomes_an_internal_error_naming_it(client, endpoint, backend):
    backend.raises["apply"] = RuntimeError("disk full")
    response = put_deployment(client)
    run_operations()

    status = operation_status(client, response)
    assert status["status"] == "Failed"
    assert status["error"]["code"] == "InternalError"
    assert status["error"]["message"] == "RuntimeError: disk full"
    assert state_of(client) == "Failed"


def test_a_transient_database_error_is_raised_for_a_retry_and_changes_no_state(
    client, endpoint, backend
):
    backend.raises["prepare"] = OperationalError("server closed the connection unexpectedly")
    response = put_deployment(client)
    (operation,) = Operation.objects.filter(kind="CreateOrUpdateDeployment")

    with pytest.raises(OperationalError):
        deployment.apply_deployment(operation_id=str(operation.pk))

    status = operation_status(client, response)
    assert status["status"] == "InProgress" and "error" not in status
    assert state_of(client) == "Creating"
    # The retry finds the database back and finishes the operation.
    del backend.raises["prepare"]
    deployment.apply_deployment(operation_id=str(operation.pk))
    assert operation_status(client, response)["status"] == "Succeeded"
    assert Operation.objects.get(pk=operation.pk).attempts == 2


@pytest.mark.parametrize("stale_build", ["fails", "succeeds"])
def test_a_worker_whose_operation_was_finished_elsewhere_leaves_the_next_change_alone(
    client, endpoint, backend, stale_build
):
    put_deployment(client)
    (first,) = Operation.objects.filter(kind="CreateOrUpdateDeployment")
    prepare = backend.prepare
    later = []

    def slow_prepare(deployment_row, assets, say):
        if later:
            return prepare(deployment_row, assets, say)
        # This worker's build outlives its lease: the reconciler re-drives the operation,
        # another worker runs it to Succeeded, and the user changes the deployment.
        later.append(None)
        deployment.apply_deployment(operation_id=str(first.pk))
        later[0] = put_deployment(client, description="v2")
        if stale_build == "fails":
            raise PermanentError("ImageBuildFailed", "the stale build failed")
        return prepare(deployment_row, assets, say)

    backend.prepare = slow_prepare
    deployment.apply_deployment(operation_id=str(first.pk))

    (update,) = later
    assert update.status_code == 200 and Operation.objects.get(pk=first.pk).status == "Succeeded"
    assert state_of(client) == "Updating"
    run_operations()
    assert operation_status(client, update)["status"] == "Succeeded"


#
# scale
#
def test_a_scale_only_asks_the_backend_to_scale(client, blue, backend):
    response = client.patch(url(DEP), {"sku": {"capacity": 3}}, format="json")
    assert response.status_code == 202 and state_of(client) == "Scaling"
    run_operations()

    assert backend.writes() == ["scale"]
    assert operation_status(client, response)["status"] == "Succeeded"
    got = client.get(url(DEP)).json()
    assert got["properties"]["provisioningState"] == "Succeeded" and got["sku"]["capacity"] == 3
    route = routing.entry(blue.endpoint).deployments["blue"]
    assert route.replicas == ("127.0.0.1:9", "127.0.0.1:10", "127.0.0.1:11")


def test_a_scale_on_a_backend_that_runs_nothing_of_the_deployment_applies_it_in_full(
    client, blue, backend
):
    backend.plans.clear()  # e.g. the cluster was rebuilt since the deployment rolled out
    response = client.patch(url(DEP), {"sku": {"capacity": 3}}, format="json")
    run_operations()

    assert backend.writes() == ["scale", "prepare", "apply"]
    assert operation_status(client, response)["status"] == "Succeeded"
    assert len(routing.entry(blue.endpoint).deployments["blue"].replicas) == 3


def test_a_replica_that_never_gets_ready_fails_the_operation_after_the_ready_timeout(
    client, endpoint, backend
):
    backend.ready = False
    response = put_deployment(client)
    with override_settings(WEIR_READY_TIMEOUT=1):
        run_operations()

    status = operation_status(client, response)
    assert status["status"] == "Failed" and status["error"]["code"] == "ReadinessTimeout"
    assert state_of(client) == "Failed"


#
# endpoints
#
def test_traffic_takes_effect_only_when_the_endpoint_update_succeeds(client, blue):
    assert put_deployment(client, name="green").status_code == 201
    run_operations()
    ep = OnlineEndpoint.objects.get()
    response = put_endpoint(client, traffic={"blue": 100}, mirrorTraffic={"green": 10})
    assert response.status_code == 200, response.content

    # Updating: the router still has the weights it had.
    before = routing.entry(ep)
    assert (before.traffic, before.mirror_traffic) == ({}, {})
    assert published(ep).traffic == {}

    run_operations()

    after = routing.entry(OnlineEndpoint.objects.get())
    assert (after.traffic, after.mirror_traffic) == ({"blue": 100}, {"green": 10})
    assert published(ep).traffic == {"blue": 100}
    assert published(ep).mirror_traffic == {"green": 10}
    assert state_of(client, "/onlineEndpoints/ep1") == "Succeeded"


def test_traffic_of_an_endpoint_update_that_is_canceled_never_takes_effect(client, blue):
    put_endpoint(client, traffic={"blue": 100})
    (update,) = Operation.objects.filter(kind="CreateOrUpdateEndpoint", status="InProgress")
    client.delete(url("/onlineEndpoints/ep1"))

    endpoint.apply_endpoint(operation_id=str(update.pk))

    assert Operation.objects.get(pk=update.pk).status == "Canceled"
    assert routing.entry(OnlineEndpoint.objects.get()).traffic == {}


#
# deletes
#
def test_deleting_a_deployment_stops_its_replicas_and_removes_it(client, blue, backend):
    response = client.delete(url(DEP))
    assert response.status_code == 202
    (operation,) = Operation.objects.filter(kind="DeleteDeployment")
    run_operations()

    assert backend.writes() == ["delete"] and backend.plans == {}
    assert client.get(url(DEP)).status_code == 404
    assert operation_status(client, response)["status"] == "Succeeded"
    assert "blue" not in published(blue.endpoint).deployments
    # Delivered again, the task finds its work done.
    deployment.delete_deployment(operation_id=str(operation.pk))
    assert backend.writes() == ["delete"]


def test_deleting_an_endpoint_stops_the_replicas_of_its_deployments(client, blue, backend):
    response = client.delete(url("/onlineEndpoints/ep1"))
    run_operations()

    assert backend.writes() == ["delete"] and backend.plans == {}
    assert client.get(url("/onlineEndpoints/ep1")).status_code == 404
    assert not OnlineDeployment.objects.exists()
    assert operation_status(client, response)["status"] == "Succeeded"


#
# the reconciler
#
@pytest.fixture
def sent(monkeypatch):
    """Tasks handed to the broker, as (name, kwargs)."""
    from controlplane import tasks

    messages = []
    monkeypatch.setattr(tasks, "send", lambda name, **kwargs: messages.append((name, kwargs)))
    return messages


def test_an_operation_whose_lease_lapsed_is_enqueued_again_once(client, endpoint, sent):
    put_deployment(client)
    (operation,) = Operation.objects.filter(kind="CreateOrUpdateDeployment")
    assert reconcile.reconcile_operations() == 0  # its lease runs: a worker has it

    lapse(operation)
    assert reconcile.reconcile_operations() == 1
    assert reconcile.reconcile_operations() == 0  # the next tick: its lease was renewed

    assert sent == [("weir.apply_deployment", {"operation_id": str(operation.pk)})]
    assert Operation.objects.get(pk=operation.pk).lease_expires_at > timezone.now()
    # The task it re-sent finishes the operation.
    run_operations()
    assert state_of(client) == "Succeeded"


def test_two_reconcilers_that_see_the_same_lapse_enqueue_it_once(
    client, endpoint, sent, monkeypatch
):
    put_deployment(client)
    (operation,) = Operation.objects.filter(kind="CreateOrUpdateDeployment")
    lapse(operation)
    deadline = reconcile.lease_deadline

    def rival_claims_first():
        # Both runs have read the lapsed row; the other one claims it first.
        monkeypatch.setattr(reconcile, "lease_deadline", deadline)
        assert reconcile.reconcile_operations() == 1
        return deadline()

    monkeypatch.setattr(reconcile, "lease_deadline", rival_claims_first)
    assert reconcile.reconcile_operations() == 0
    assert sent == [("weir.apply_deployment", {"operation_id": str(operation.pk)})]


def test_an_operation_past_the_attempt_limit_times_out_and_fails_its_resource(
    client, endpoint, sent
):
    response = put_deployment(client)
    (operation,) = Operation.objects.filter(kind="CreateOrUpdateDeployment")
    lapse(operation, attempts=reconcile.MAX_ATTEMPTS)

    assert reconcile.reconcile_operations() == 0

    status = operation_status(client, response)
    assert status["status"] == "Failed"
    assert status["error"]["code"] == "OperationTimedOut"
    assert state_of(client) == "Failed"
    assert sent == []


def test_one_operation_that_cannot_be_reconciled_does_not_stop_the_others(
    client, endpoint, sent, monkeypatch
):
    put_deployment(client, name="blue")
    put_deployment(client, name="green")
    operations = list(Operation.objects.filter(kind="CreateOrUpdateDeployment"))
    for operation in operations:
        lapse(operation)
    enqueue = reconcile.enqueue
    failed = []

    def enqueue_failing_once(operation):
        if not failed:
            failed.append(operation.pk)
            raise RuntimeError("the row cannot be read")
        enqueue(operation)

    monkeypatch.setattr(reconcile, "enqueue", enqueue_failing_once)
    assert reconcile.reconcile_operations() == 1

    (other,) = [o for o in operations if o.pk not in failed]
    assert sent == [("weir.apply_deployment", {"operation_id": str(other.pk)})]
    # The bad row waits for its next lease to lapse instead of stalling every tick.
    assert Operation.objects.get(pk=failed[0]).lease_expires_at > timezone.now()
    assert reconcile.reconcile_operations() == 0


#
# publishing routes
#
def test_publishing_routes_records_where_the_ready_replicas_of_settled_deployments_are(
    client, blue, backend
):
    assert routing.entry(blue.endpoint).deployments["blue"].replicas == (
        "127.0.0.1:9",
        "127.0.0.1:10",
    )
    backend.host = "127.0.0.2"  # the replicas moved

    assert reconcile.publish_routes() == 1

    moved = ("127.0.0.2:9", "127.0.0.2:10")
    assert routing.entry(blue.endpoint).deployments["blue"].replicas == moved
    assert published(blue.endpoint).deployments["blue"].replicas == moved


def test_publishing_routes_keeps_the_stored_route_when_the_backend_cannot_be_read(
    client, blue, backend
):
    assert put_deployment(client, name="green").status_code == 201
    run_operations()
    backend.unreachable.add(str(blue.pk))
    backend.host = "127.0.0.2"

    assert reconcile.publish_routes() == 1

    deployments = published(blue.endpoint).deployments
    assert deployments["blue"].replicas == ("127.0.0.1:9", "127.0.0.1:10")
    assert deployments["green"].replicas == ("127.0.0.2:9",)


def test_publishing_routes_leaves_deployments_with_an_operation_running_alone(
    client, blue, backend
):
    client.patch(url(DEP), {"sku": {"capacity": 3}}, format="json")
    assert state_of(client) == "Scaling"
    backend.host = "127.0.0.2"

    reconcile.publish_routes()

    assert published(blue.endpoint).deployments["blue"].replicas == (
        "127.0.0.1:9",
        "127.0.0.1:10",
    )
    assert "status" not in backend.calls


#
# the autoscaler
#
AUTOSCALED = {
    "scaleType": "TargetUtilization",
    "minInstances": 1,
    "maxInstances": 3,
    "targetUtilizationPercentage": 60,
}


def decision(action: str, before: int, after: int) -> dict:
    return {
        "action": action,
        "fromInstances": before,
        "toInstances": after,
        "utilizationPercentage": 10.0,
        "targetUtilizationPercentage": 60,
        "busyReplicas": 0.3,
        "queuedRequests": 0.0,
        "readyReplicas": before,
        "minInstances": 1,
        "maxInstances": 3,
        "reason": "utilization 10% against a target of 60%",
        "decidedAt": timezone.now().timestamp(),
    }


@pytest.fixture
def autoscaled(client, endpoint, backend):
    assert put_deployment(client, capacity=3, scaleSettings=AUTOSCALED).status_code == 201
    run_operations()
    backend.calls.clear()
    return OnlineDeployment.objects.get()


def test_a_scale_down_that_applies_is_recorded_and_scaled_in_the_same_task(
    client, autoscaled, backend
):
    autoscale(deployment_id=str(autoscaled.pk), decision=decision("ScaleDown", 3, 2))

    got = client.get(url(DEP)).json()
    assert got["properties"]["provisioningState"] == "Succeeded" and got["sku"]["capacity"] == 2
    (event,) = ScaleEvent.objects.all()
    assert event.outcome == "Applied."
    operation = event.operation
    assert (operation.status, operation.created_by) == ("Succeeded", "weir-autoscaler")
    assert backend.writes() == ["scale"]
    assert len(routing.entry(autoscaled.endpoint).deployments["blue"].replicas) == 2
    assert run_operations() == 0  # nothing was left for another worker


def test_a_decision_that_no_longer_applies_is_recorded_with_no_operation(
    client, autoscaled, backend
):
    autoscale(deployment_id=str(autoscaled.pk), decision=decision("ScaleDown", 2, 1))

    (event,) = ScaleEvent.objects.all()
    assert event.outcome == "Not applied: the instance count is 3 now."
    assert event.operation is None
    assert not Operation.objects.filter(kind="ScaleDeployment").exists()
    assert backend.writes() == []
    assert client.get(url(DEP)).json()["sku"]["capacity"] == 3
