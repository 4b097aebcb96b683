"""Kubernetes computes attached to a workspace: synchronous PUT/GET/list/DELETE."""

import pytest

from tests.conftest import assert_arm_error, put_endpoint, run_operations, url
from tests.controlplane.arm_resource import ArmResourceTests

KUBERNETES = {
    "location": "local",
    "properties": {
        "computeType": "Kubernetes",
        "resourceId": "team-cluster",
        "properties": {"namespace": "team-a", "defaultInstanceType": "defaultinstancetype"},
    },
}


class TestComputeResource(ArmResourceTests):
    collection = "/computes"
    resource_type = "Microsoft.MachineLearningServices/workspaces/computes"
    body = KUBERNETES
    update = {**KUBERNETES, "properties": {**KUBERNETES["properties"], "description": "d"}}
    bad_name = "9-starts-with-a-digit"
    bad_name_target = "computeName"

    @pytest.fixture
    def parent(self, workspace):
        return workspace


def test_it_attaches_a_kubernetes_cluster(client, workspace):
    body = client.put(url("/computes/k8s"), KUBERNETES, format="json").json()
    assert body["properties"]["computeType"] == "Kubernetes"
    assert body["properties"]["provisioningState"] == "Succeeded"
    assert body["properties"]["properties"]["namespace"] == "team-a"
    assert body["properties"]["properties"]["defaultInstanceType"] == "defaultinstancetype"


def test_only_kubernetes_with_a_valid_namespace(client, workspace):
    aks = {**KUBERNETES, "properties": {**KUBERNETES["properties"], "computeType": "AKS"}}
    error = assert_arm_error(
        client.put(url("/computes/k8s"), aks, format="json"),
        400,
        "ValidationError",
        "properties.computeType",
    )
    assert "only Kubernetes" in error["message"]
    bad = {
        **KUBERNETES,
        "properties": {**KUBERNETES["properties"], "properties": {"namespace": "Team_A"}},
    }
    assert_arm_error(
        client.put(url("/computes/k8s"), bad, format="json"),
        400,
        "ValidationError",
        "properties.properties.namespace",
    )
    assert client.get(url("/computes")).json()["value"] == []


def test_a_compute_an_endpoint_uses_cannot_be_detached(client, workspace):
    client.put(url("/computes/k8s"), KUBERNETES, format="json")
    assert put_endpoint(client, compute="azureml:k8s").status_code == 201
    run_operations()
    assert_arm_error(client.delete(url("/computes/k8s")), 409, "Conflict")


def test_a_compute_keeps_its_type(client, workspace):
    assert client.put(url("/computes/k8s"), KUBERNETES, format="json").status_code == 201
    pool = {
        "location": "local",
        "properties": {
            "computeType": "AmlCompute",
            "properties": {"scaleSettings": {"maxNodeCount": 1}},
        },
    }
    assert_arm_error(
        client.put(url("/computes/k8s"), pool, format="json"),
        400,
        "ValidationError",
        "properties.computeType",
    )
    assert client.get(url("/computes/k8s")).json()["properties"]["computeType"] == "Kubernetes"
