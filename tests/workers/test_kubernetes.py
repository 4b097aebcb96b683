"""The Kubernetes backend: its manifests against Kubernetes' OpenAPI schemas, and its calls
through the official client against an HTTP server that answers the calls it makes (apply,
get, list, patch, delete, logs) as the Kubernetes API does. No cluster was available to
these tests: scheduling, pulling images and probes are not exercised."""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import kubernetes_validate
import pytest

from workers.backends.kubernetes import (
    APPLY,
    ID_LABEL,
    KubernetesBackend,
    KubernetesPlan,
    ProbePlan,
    manifests,
    object_name,
)

TOKEN = "test-token"


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
        "liveness": ProbePlan(initial_delay=5),
        "readiness": ProbePlan(failure_threshold=3),
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "1", "memory": "2Gi", "gpu": "1"},
    }
    return KubernetesPlan(**{**values, **changes})


def test_manifests_validate_against_the_kubernetes_schemas():
    version = kubernetes_validate.latest_version()
    deployment, service = manifests(plan())
    for manifest in (deployment, service):
        kubernetes_validate.validate(manifest, version, strict=True)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["readinessProbe"]["failureThreshold"] == 3
    init = deployment["spec"]["template"]["spec"]["initContainers"][0]["command"][-1]
    assert "dataplane.fetch" in init and "/azureml-models/model" in init
    assert service["spec"]["selector"] == {ID_LABEL: plan().deployment_id}


def test_names_are_dns_labels():
    assert object_name("My-Endpoint", "Blue") == "my-endpoint-blue"
    long = object_name("e" * 40, "d" * 40)
    assert len(long) <= 63 and long != object_name("e" * 40, "d" * 39)


class FakeKubernetes(ThreadingHTTPServer):
    """The Kubernetes API for the calls the backend makes, objects kept in memory."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.objects: dict[str, dict] = {}
        self.applied: dict[str, str] = {}
        self.calls: list[tuple[str, str, str, str]] = []
        self.version = 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def next_version(self) -> str:
        self.version += 1
        return str(self.version)

    def deployments(self, namespace: str) -> list[dict]:
        prefix = f"/apis/apps/v1/namespaces/{namespace}/deployments/"
        return [o for path, o in self.objects.items() if path.startswith(prefix)]

    def pods(self, namespace: str) -> list[dict]:
        pods = []
        for d, deployment in enumerate(self.deployments(namespace)):
            template = deployment["spec"]["template"]
            for i in range(deployment["spec"]["replicas"]):
                name = f"{deployment['metadata']['name']}-{i}"
                pods.append(
                    {
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {
                            "name": name,
                            "namespace": namespace,
                            "labels": template["metadata"]["labels"],
                        },
                        "spec": template["spec"],
                        "status": {
                            "podIP": f"10.1.{d}.{i + 1}",
                            "conditions": [{"type": "Ready", "status": "True"}],
                        },
                    }
                )
        return pods


def _matches(obj: dict, selector: str | None) -> bool:
    if not selector:
        return True
    labels = obj["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in (s.split("=", 1) for s in selector.split(",")))


class Handler(BaseHTTPRequestHandler):
    server: FakeKubernetes

    def log_message(self, *args):
        pass

    def _send(self, status: int, body, content_type: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self, path: str) -> None:
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "reason": "NotFound",
            "code": 404,
            "message": f"{path} not found",
        }
        self._send(404, status)

    def _record(self) -> tuple[str, dict]:
        parts = urlsplit(self.path)
        self.server.calls.append(
            (
                self.command,
                parts.path,
                self.headers.get("Content-Type", ""),
                self.headers.get("Authorization", ""),
            )
        )
        return parts.path, {k: v[0] for k, v in parse_qs(parts.query).items()}

    def do_PATCH(self):
        path, query = self._record()
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        objects = self.server.objects
        if path.endswith("/scale"):
            deployment = objects.get(path.removesuffix("/scale"))
            if deployment is None:
                return self._not_found(path)
            deployment["spec"]["replicas"] = json.loads(body)["spec"]["replicas"]
            deployment["metadata"]["resourceVersion"] = self.server.next_version()
            meta = deployment["metadata"]
            return self._send(
                200,
                {
                    "apiVersion": "autoscaling/v1",
                    "kind": "Scale",
                    "metadata": {"name": meta["name"], "namespace": meta.get("namespace")},
                    "spec": {"replicas": deployment["spec"]["replicas"]},
                },
            )
        if self.headers.get("Content-Type") != APPLY or query.get("fieldManager") != "weir":
            return self._send(415, {"kind": "Status", "code": 415, "message": "not an apply"})
        if self.server.applied.get(path) == body:
            return self._send(200, objects[path])  # the same configuration: nothing changes
        created = path not in objects
        applied = json.loads(body)
        current = objects.get(path) or {"metadata": {"generation": 0}}
        obj = copy.deepcopy(applied)
        obj["metadata"]["resourceVersion"] = self.server.next_version()
        obj["metadata"]["generation"] = current["metadata"].get("generation", 0) + 1
        if "replicas" in (current.get("spec") or {}) and "replicas" not in obj.get("spec", {}):
            obj["spec"]["replicas"] = current["spec"]["replicas"]
        objects[path] = obj
        self.server.applied[path] = body
        self._send(201 if created else 200, obj)

    def do_GET(self):
        path, query = self._record()
        selector = query.get("labelSelector")
        parts = path.strip("/").split("/")
        if path.endswith("/log"):
            return self._send(200, f"log of {parts[-2]}\nscored\n", "text/plain")
        if parts[-1] == "deployments":
            items = [d for d in self.server.deployments(parts[-2]) if _matches(d, selector)]
            return self._send(
                200,
                {"apiVersion": "apps/v1", "kind": "DeploymentList", "metadata": {}, "items": items},
            )
        if parts[-1] == "pods":
            items = [p for p in self.server.pods(parts[-2]) if _matches(p, selector)]
            return self._send(
                200, {"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items}
            )
        if path in self.server.objects:
            return self._send(200, self.server.objects[path])
        self._not_found(path)

    def do_DELETE(self):
        path, _ = self._record()
        if self.server.objects.pop(path, None) is None:
            return self._not_found(path)
        self.server.applied.pop(path, None)
        self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})


@pytest.fixture
def cluster(tmp_path):
    server = FakeKubernetes()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
        f"clusters:\n- name: fake\n  cluster:\n    server: {server.url}\n"
        f"users:\n- name: weir\n  user:\n    token: {TOKEN}\n"
        "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: weir\n"
    )
    yield server, KubernetesBackend(str(kubeconfig), "fake")
    server.shutdown()


def test_apply_scale_status_logs_and_delete(cluster):
    server, backend = cluster
    blue = plan()
    deployment_path = "/apis/apps/v1/namespaces/team-a/deployments/my-endpoint-blue"
    service_path = "/api/v1/namespaces/team-a/services/my-endpoint-blue"

    backend.apply(blue)
    applies = [(m, p) for m, p, c, _ in server.calls if m == "PATCH" and c == APPLY]
    assert applies == [
        ("PATCH", "/api/v1/namespaces/team-a"),
        ("PATCH", deployment_path),
        ("PATCH", service_path),
    ]
    assert all(auth == f"Bearer {TOKEN}" for *_, auth in server.calls)
    first = server.objects[deployment_path]["metadata"]["resourceVersion"]

    # The same plan again: applied again, and nothing changes.
    backend.apply(blue)
    assert server.objects[deployment_path]["metadata"]["resourceVersion"] == first

    status = backend.status("team-a", blue.deployment_id)
    assert status.revision == "r1" and status.desired == 2 and status.ready == 2
    assert sorted(r["address"] for r in status.replicas) == ["10.1.0.1:5001", "10.1.0.2:5001"]
    assert status.rolled_out("r1", 2)

    backend.scale("team-a", blue.name, 3)
    assert server.objects[deployment_path]["spec"]["replicas"] == 3
    assert backend.status("team-a", blue.deployment_id).ready == 3

    # A new revision is a changed template: a new generation of the same Deployment.
    backend.apply(plan(revision="r2", replicas=3))
    assert server.objects[deployment_path]["metadata"]["generation"] == 2
    assert backend.status("team-a", blue.deployment_id).revision == "r2"

    logs = backend.logs("team-a", blue.deployment_id, tail=10)
    assert "== my-endpoint-blue-0 ==" in logs and "scored" in logs

    backend.delete("team-a", blue.name)
    assert deployment_path not in server.objects and service_path not in server.objects
    assert backend.status("team-a", blue.deployment_id) is None
    backend.delete("team-a", blue.name)  # already gone: nothing to do
    assert not any("horizontalpodautoscalers" in p for _, p, _, _ in server.calls)
