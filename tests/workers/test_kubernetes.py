"""The Kubernetes backend: its manifests against Kubernetes' OpenAPI schemas, and its calls
through the official client against an HTTP server that answers the calls it makes (apply,
get, list, patch, delete, logs) as the Kubernetes API does. No cluster was available to
these tests: scheduling, pulling images and probes are not exercised."""

from __future__ import annotations

import kubernetes_validate
import pytest

from dataplane.agent.spec import Probe
from tests.workers.conftest import KUBERNETES_TOKEN
from workers.backends.kubernetes import (
    APPLY,
    DRAIN,
    ID_LABEL,
    KubernetesBackend,
    KubernetesPlan,
    manifests,
    object_name,
)


def plan(**changes) -> KubernetesPlan:
    values = {
        "deployment_id": "6f1c0e1e-8d5e-4a5e-9d7a-2f9b7c1d0a11",
        "endpoint": "my-endpoint",
        "deployment": "blue",
        "namespace": "team-a",
        "image": "registry.example:5000/weir/environments:3dea44c5",
        "replicas": 2,
        "revision": "r1",
        "scoring_script": "score.py",
        "code_uri": "https://blob.example/acct/c/LocalUpload/x/onlinescoring?sv=1&sig=s",
        "model_uri": "https://blob.example/acct/c/LocalUpload/y/model?sv=1&sig=s",
        "environment_variables": {"LEVEL": "3"},
        "liveness": Probe(initial_delay=5),
        "readiness": Probe(failure_threshold=3),
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "2Gi", "gpu": "1"},
        "request_timeout": 30.0,
    }
    return KubernetesPlan(**{**values, **changes})


def test_manifests_validate_against_the_kubernetes_schemas():
    version = kubernetes_validate.latest_version()
    deployment, service, policy = manifests(plan())
    for manifest in (deployment, service, policy):
        kubernetes_validate.validate(manifest, version, strict=True)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["readinessProbe"]["failureThreshold"] == 3
    # A stopping pod serves on for DRAIN seconds, then has the request timeout to finish.
    assert "time.sleep(2)" in container["lifecycle"]["preStop"]["exec"]["command"][-1]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= DRAIN + 30
    init = deployment["spec"]["template"]["spec"]["initContainers"][0]["command"][-1]
    assert "dataplane.fetch" in init and "/azureml-models/model" in init
    assert service["spec"]["selector"] == {ID_LABEL: plan().deployment_id}
    # The replicas take connections from Weir's router pods only, on the server's port.
    assert policy["spec"]["podSelector"] == {"matchLabels": {ID_LABEL: plan().deployment_id}}
    (rule,) = policy["spec"]["ingress"]
    (source,) = rule["from"]
    assert source["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "weir"}
    assert source["podSelector"]["matchExpressions"][0]["values"] == ["weir", "weir-router"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 5001}]


def test_an_mlflow_model_without_a_scoring_script_runs_the_servers_mlflow_script():
    version = kubernetes_validate.latest_version()
    deployment, *_ = manifests(plan(scoring_script=None, code_uri=None))
    kubernetes_validate.validate(deployment, version, strict=True)
    pod = deployment["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    entry_script = args[args.index("--entry-script") + 1]
    assert entry_script == "/opt/weir/server/dataplane/inference/scripts/mlflow_score.py"
    assert args[args.index("--model-dir") + 1] == "/var/azureml-app/azureml-models"
    # Only the model is fetched: there is no code.
    fetches = pod["initContainers"][0]["command"][-1].split(" && ")
    assert len(fetches) == 1 and fetches[0].endswith("--to /var/azureml-app/azureml-models/model")


def test_names_are_dns_labels():
    assert object_name("My-Endpoint", "Blue") == "my-endpoint-blue"
    long = object_name("e" * 40, "d" * 40)
    assert len(long) <= 63 and long != object_name("e" * 40, "d" * 39)


@pytest.fixture
def cluster(kubernetes_api):
    server, kubeconfig = kubernetes_api
    return server, KubernetesBackend(kubeconfig, "fake", "team-a")


def test_apply_scale_status_logs_and_delete(cluster):
    server, backend = cluster
    blue = plan()
    deployment_path = "/apis/apps/v1/namespaces/team-a/deployments/my-endpoint-blue"
    service_path = "/api/v1/namespaces/team-a/services/my-endpoint-blue"
    policy_path = "/apis/networking.k8s.io/v1/namespaces/team-a/networkpolicies/my-endpoint-blue"

    backend.apply(blue)
    applies = [(m, p) for m, p, c, _ in server.calls if m == "PATCH" and c == APPLY]
    assert applies == [
        ("PATCH", "/api/v1/namespaces/team-a"),
        ("PATCH", deployment_path),
        ("PATCH", service_path),
        ("PATCH", policy_path),
    ]
    assert all(auth == f"Bearer {KUBERNETES_TOKEN}" for *_, auth in server.calls)
    first = server.objects[deployment_path]["metadata"]["resourceVersion"]

    # The same plan again: applied again, and nothing changes.
    backend.apply(blue)
    assert server.objects[deployment_path]["metadata"]["resourceVersion"] == first

    status = backend.status(blue.deployment_id)
    assert status.revision == "r1" and status.desired == 2 and status.ready == 2
    assert sorted(r["address"] for r in status.replicas) == ["10.1.0.1:5001", "10.1.0.2:5001"]
    assert status.rolled_out("r1", 2)

    assert backend.scale(blue.deployment_id, 3) == "r1"  # the revision that runs
    assert server.objects[deployment_path]["spec"]["replicas"] == 3
    assert backend.status(blue.deployment_id).ready == 3
    # A pod being deleted (scale-in) no longer counts as ready, though its condition lags.
    server.terminating.add("my-endpoint-blue-2")
    states = {r["name"]: r["state"] for r in backend.status(blue.deployment_id).replicas}
    assert states["my-endpoint-blue-2"] == "stopping" and states["my-endpoint-blue-0"] == "ready"
    server.terminating.clear()

    # A new revision is a changed template: a new generation of the same Deployment.
    backend.apply(plan(revision="r2", replicas=3))
    assert server.objects[deployment_path]["metadata"]["generation"] == 2
    assert backend.status(blue.deployment_id).revision == "r2"

    logs = backend.logs(blue.deployment_id, tail=10)
    assert "== my-endpoint-blue-0 ==" in logs and "scored" in logs

    backend.delete(blue.deployment_id)
    assert deployment_path not in server.objects and service_path not in server.objects
    assert policy_path not in server.objects
    assert backend.status(blue.deployment_id) is None
    backend.delete(blue.deployment_id)  # already gone: nothing to do
    assert backend.scale(blue.deployment_id, 1) is None  # nothing runs: apply a plan first
    assert not any("horizontalpodautoscalers" in p for _, p, _, _ in server.calls)
