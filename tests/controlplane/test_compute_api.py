"""Kubernetes computes attached to a workspace: synchronous PUT/GET/list/DELETE."""

from tests.conftest import assert_arm_error, put_endpoint, run_operations, url

KUBERNETES = {
    "location": "local",
    "properties": {
        "computeType": "Kubernetes",
        "resourceId": "team-cluster",
        "properties": {"namespace": "team-a", "defaultInstanceType": "defaultinstancetype"},
    },
}


def test_attach_show_list_and_detach(client, workspace):
    created = client.put(url("/computes/k8s"), KUBERNETES, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["type"] == "Microsoft.MachineLearningServices/workspaces/computes"
    assert body["properties"]["computeType"] == "Kubernetes"
    assert body["properties"]["provisioningState"] == "Succeeded"
    assert body["properties"]["properties"]["namespace"] == "team-a"
    assert body["properties"]["properties"]["defaultInstanceType"] == "defaultinstancetype"
    assert client.put(url("/computes/K8S"), KUBERNETES, format="json").status_code == 200
    assert [c["name"] for c in client.get(url("/computes")).json()["value"]] == ["k8s"]
    assert client.delete(url("/computes/k8s")).status_code == 200
    assert_arm_error(client.get(url("/computes/k8s")), 404, "ResourceNotFound")
    assert client.delete(url("/computes/k8s")).status_code == 204


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
