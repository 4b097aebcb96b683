"""Autoscaled deployments: the instance count stays within min..max, and the router's
decisions are recorded as scale events and applied, in the same task, by the backend."""

import time

import pytest

from tests.conftest import assert_arm_error, put_deployment, run_operations, url

DEP = "/onlineEndpoints/ep1/deployments/blue"
AUTOSCALED = {
    "scaleType": "TargetUtilization",
    "minInstances": 1,
    "maxInstances": 3,
    "targetUtilizationPercentage": 60,
}


def decision(action: str, before: int, after: int, **inputs) -> dict:
    return {
        "action": action,
        "fromInstances": before,
        "toInstances": after,
        "utilizationPercentage": 90.0,
        "targetUtilizationPercentage": 60,
        "busyReplicas": 2.0,
        "queuedRequests": 0.7,
        "readyReplicas": before,
        "minInstances": 1,
        "maxInstances": 3,
        "reason": "utilization 90% against a target of 60%",
        "decidedAt": time.time(),
        **inputs,
    }


def autoscale(deployment_id: str, body: dict) -> None:
    """What the worker does with the router's ``weir.autoscale`` message."""
    from workers.tasks.autoscale import autoscale as task

    task(deployment_id=deployment_id, decision=body)


@pytest.fixture
def autoscaled(client, endpoint):
    response = put_deployment(client, capacity=5, scaleSettings=AUTOSCALED)
    assert response.status_code == 201, response.content
    run_operations()
    return client.get(url(DEP)).json()


def test_the_instance_count_starts_within_the_limits_and_a_put_keeps_it(client, autoscaled):
    assert autoscaled["sku"]["capacity"] == 3
    assert autoscaled["properties"]["scaleSettings"]["pollingInterval"] == "PT1S"
    again = put_deployment(client, capacity=1, scaleSettings=AUTOSCALED)
    assert again.status_code == 200 and again.json()["sku"]["capacity"] == 3


def test_decisions_are_recorded_and_applied_as_scaling(client, autoscaled):
    from controlplane.core.models import OnlineDeployment, OnlineEndpoint, Operation
    from controlplane.core.services import routing

    deployment_id = str(OnlineDeployment.objects.get().pk)
    autoscale(deployment_id, decision("ScaleUp", 2, 3))  # the count is 3 already
    autoscale(deployment_id, decision("AtMaxInstances", 3, 3))
    autoscale(deployment_id, decision("ScaleDown", 3, 2, utilizationPercentage=10.0))
    scaled = client.get(url(DEP)).json()
    assert scaled["properties"]["provisioningState"] == "Succeeded"
    assert scaled["sku"]["capacity"] == 2
    assert scaled["systemData"]["lastModifiedBy"] == "weir-autoscaler"
    # One hop: the task ran the scale itself; nothing was left for another worker.
    assert run_operations() == 0
    (operation,) = Operation.objects.filter(kind="ScaleDeployment")
    assert operation.status == "Succeeded" and operation.created_by == "weir-autoscaler"
    entry = routing.entry(OnlineEndpoint.objects.get())
    assert len(entry.deployments["blue"].replicas) == 2  # two ready replicas, observed

    events = client.get(url(f"{DEP}/scaleEvents")).json()["value"]
    assert [(e["action"], e["outcome"]) for e in events] == [
        ("ScaleDown", "Applied."),
        ("AtMaxInstances", "Not scaled: the deployment is at maxInstances."),
        ("ScaleUp", "Not applied: the instance count is 3 now."),
    ]
    assert events[0]["utilizationPercentage"] == 10.0 and events[0]["operationId"]
    assert events[1]["operationId"] is None
    page = client.get(url(f"{DEP}/scaleEvents", "$top=1")).json()
    assert len(page["value"]) == 1 and "$skip=1" in page["nextLink"]


def test_a_decision_on_a_busy_deployment_is_recorded_not_applied(client, autoscaled):
    from controlplane.core.models import OnlineDeployment

    client.patch(url(DEP), {"sku": {"capacity": 2}}, format="json")  # Scaling now
    autoscale(str(OnlineDeployment.objects.get().pk), decision("ScaleUp", 2, 3))
    (event,) = client.get(url(f"{DEP}/scaleEvents")).json()["value"]
    assert event["outcome"] == "Not applied: the deployment is Scaling."


def test_scale_events_of_a_missing_deployment_are_404(client, endpoint):
    response = client.get(url("/onlineEndpoints/ep1/deployments/nope/scaleEvents"))
    assert_arm_error(response, 404, "ResourceNotFound")
