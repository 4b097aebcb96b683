"""A Kubernetes deployment end to end through the API and the real task bodies: the
endpoint's attached compute, the image pipeline (real buildah, real registry), the backend
applying to an API-shaped server, routing to pod addresses, logs, scaling and delete."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from tests.conftest import put_deployment, put_endpoint, run_operations, url
from tests.workers.conftest import pipeline_settings

DEP = "/onlineEndpoints/ep1/deployments/blue"
DEPLOYMENT_PATH = "/apis/apps/v1/namespaces/team-a/deployments/ep1-blue"


@pytest.fixture
def kubernetes(kubernetes_api, registry, base_image):
    from workers import backends

    server, kubeconfig = kubernetes_api
    backends._cluster.cache_clear()
    with pipeline_settings(registry, base_image), override_settings(WEIR_KUBECONFIG=kubeconfig):
        yield server
    backends._cluster.cache_clear()


def test_a_kubernetes_deployment_runs_in_the_cluster(client, workspace, kubernetes, registry):
    compute = {
        "location": "local",
        "properties": {
            "computeType": "Kubernetes",
            "resourceId": "fake",
            "properties": {"namespace": "team-a"},
        },
    }
    assert client.put(url("/computes/k8s"), compute, format="json").status_code == 201
    assert put_endpoint(client, compute="azureml:k8s").status_code == 201
    run_operations()
    response = put_deployment(client, endpointComputeType="Kubernetes")
    assert response.status_code == 201, response.content
    run_operations()
    deployment = client.get(url(DEP)).json()
    assert deployment["properties"]["provisioningState"] == "Succeeded", deployment

    applied = kubernetes.objects[DEPLOYMENT_PATH]
    pod = applied["spec"]["template"]["spec"]
    (tag,) = registry.tags()
    assert pod["containers"][0]["image"] == f"{registry.address}/weir/environments:{tag}"
    fetch = pod["initContainers"][0]["command"][-1]
    assert "dataplane.fetch" in fetch and "sig=" in fetch and "sp=rl" in fetch
    log = client.post(
        url(f"{DEP}/getLogs"), {"containerType": "StorageInitializer"}, format="json"
    ).json()["content"]
    assert "pushed" in log and "namespace team-a" in log

    from controlplane.core.models import OnlineEndpoint
    from controlplane.core.services import routing

    entry = routing.entry(OnlineEndpoint.objects.get())
    assert entry.deployments["blue"].replicas == ("10.1.0.1:5001",)
    # getLogs asks a worker for the replicas' output (tests/system runs that through the
    # API); here the task body reads it from the cluster.
    from workers.tasks.deployment import deployment_logs

    logs = deployment_logs(deployment_id=entry.deployments["blue"].id, tail=None)
    assert "== ep1-blue-0 ==" in logs

    # Scaling patches the count: nothing is applied, resolved or built again.
    kubernetes.calls.clear()
    assert client.patch(url(DEP), {"sku": {"capacity": 2}}, format="json").status_code == 202
    run_operations()
    assert kubernetes.objects[DEPLOYMENT_PATH]["spec"]["replicas"] == 2
    assert [(m, p) for m, p, *_ in kubernetes.calls if m == "PATCH"] == [
        ("PATCH", f"{DEPLOYMENT_PATH}/scale")
    ]
    assert registry.tags() == [tag]
    assert len(routing.entry(OnlineEndpoint.objects.get()).deployments["blue"].replicas) == 2

    assert client.delete(url(DEP)).status_code == 202
    run_operations()
    assert DEPLOYMENT_PATH not in kubernetes.objects
    assert not any(p.startswith("/api/v1/namespaces/team-a/services/") for p in kubernetes.objects)
    assert json.dumps(client.get(url("/onlineEndpoints/ep1/deployments")).json()["value"]) == "[]"


def test_without_an_attached_compute_the_deployment_fails_naming_it(client, workspace, kubernetes):
    assert put_endpoint(client).status_code == 201
    run_operations()
    response = put_deployment(client, endpointComputeType="Kubernetes")
    run_operations()
    assert client.get(url(DEP)).json()["properties"]["provisioningState"] == "Failed"
    status = client.get(response["Azure-AsyncOperation"].removeprefix("http://testserver")).json()
    assert status["status"] == "Failed"
    assert status["error"]["code"] == "KubernetesComputeRequired"
    assert "properties.compute" in status["error"]["message"]
    assert kubernetes.calls == []  # nothing was sent to any cluster
    assert client.delete(url(DEP)).status_code == 202  # and it can still be deleted
    run_operations()
    assert client.get(url("/onlineEndpoints/ep1/deployments")).json()["value"] == []
