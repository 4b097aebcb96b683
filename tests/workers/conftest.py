"""Shared by the worker tests: the image pipeline's tools (buildah, Debian's docker-registry,
a base image built once from Debian's packages) and an HTTP server answering as the
Kubernetes API does for the calls the Kubernetes backend makes."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.test import override_settings

from tests.dataplane.conftest import free_port
from workers.backends.kubernetes import APPLY

ROOT = Path(__file__).resolve().parents[2]
ONLINE = ROOT / "examples" / "online"
BASE = "localhost/weir-test-base:bookworm"
BUILDAH = ["buildah", "--storage-driver", "vfs"]
KUBERNETES_TOKEN = "test-token"
# The commands these tests run, each from the Debian package of the same name; bin/test
# installs them.
TOOLS = ("buildah", "docker-registry", "debootstrap")


def ensure_tools() -> None:
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        pytest.fail(
            f"not installed: {', '.join(missing)}; bin/test installs them "
            f"(Debian packages {' '.join(missing)})",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def base_image(tmp_path_factory) -> str:
    """A Debian bookworm image with python3 and venv, built once from Debian's packages."""
    ensure_tools()
    listed = subprocess.run([*BUILDAH, "images", "--quiet", BASE], capture_output=True)
    if listed.returncode == 0 and listed.stdout.strip():
        return BASE
    rootfs = tmp_path_factory.mktemp("rootfs")
    subprocess.run(
        [
            "debootstrap",
            "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates",
            "bookworm",
            str(rootfs),
            "http://deb.debian.org/debian",
        ],
        check=True,
        capture_output=True,
    )
    container = subprocess.run(
        [*BUILDAH, "from", "scratch"], check=True, capture_output=True, text=True
    ).stdout.strip()
    try:
        subprocess.run([*BUILDAH, "copy", container, f"{rootfs}/", "/"], check=True)
        subprocess.run([*BUILDAH, "commit", "--quiet", container, BASE], check=True)
    finally:
        subprocess.run([*BUILDAH, "rm", container], capture_output=True)
    shutil.rmtree(rootfs, ignore_errors=True)
    return BASE


class RegistryServer:
    def __init__(self, root: Path, read_only: bool = False):
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        config = root / f"registry-{self.port}.yml"
        config.write_text(
            "version: 0.1\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / str(self.port)}\n"
            f"  maintenance:\n    readonly:\n      enabled: {str(read_only).lower()}\n"
            f"http:\n  addr: {self.address}\n"
        )
        self.process = subprocess.Popen(
            ["docker-registry", "serve", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://{self.address}/v2/", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.1)
        raise RuntimeError("the registry did not start")

    def tags(self) -> list[str]:
        answer = requests.get(f"http://{self.address}/v2/weir/environments/tags/list", timeout=10)
        return sorted(answer.json().get("tags") or []) if answer.status_code == 200 else []

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def registry(tmp_path):
    ensure_tools()
    server = RegistryServer(tmp_path)
    yield server
    server.stop()
    forget_built_images()


def forget_built_images() -> None:
    """Images the tests built (named after their loopback registries) take disk (vfs keeps
    whole copies): remove them, and what they left behind."""
    names = subprocess.run(
        [*BUILDAH, "images", "--format", "{{.Name}}:{{.Tag}}"], capture_output=True, text=True
    ).stdout.split()
    built = [name for name in names if name.startswith("127.0.0.1:")]
    if built:
        subprocess.run([*BUILDAH, "rmi", "--force", *built], capture_output=True)
    subprocess.run([*BUILDAH, "rmi", "--prune"], capture_output=True)


def pipeline_settings(registry: RegistryServer, base: str):
    return override_settings(
        WEIR_REGISTRY=registry.address,
        WEIR_SHARED_REGISTRY="",
        WEIR_INSECURE_REGISTRIES=[registry.address],
        WEIR_IMAGE_BASE=base,
        WEIR_BUILDAH=BUILDAH,
    )


class FakeKubernetes(ThreadingHTTPServer):
    """The Kubernetes API for the calls the backend makes, objects kept in memory."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.objects: dict[str, dict] = {}
        self.applied: dict[str, str] = {}
        self.calls: list[tuple[str, str, str, str]] = []
        self.version = 0
        # Pod names being stopped: listed with a deletionTimestamp (and still Ready).
        self.terminating: set[str] = set()
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
                            **(
                                {"deletionTimestamp": "2026-01-01T00:00:00Z"}
                                if name in self.terminating
                                else {}
                            ),
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
        if parts[-1] in ("services", "networkpolicies"):
            prefix = f"{path}/"
            items = [
                o
                for p, o in self.server.objects.items()
                if p.startswith(prefix) and _matches(o, selector)
            ]
            group, kind = (
                ("v1", "ServiceList")
                if parts[-1] == "services"
                else ("networking.k8s.io/v1", "NetworkPolicyList")
            )
            return self._send(
                200, {"apiVersion": group, "kind": kind, "metadata": {}, "items": items}
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
def kubernetes_api(tmp_path):
    """(the fake API server, a kubeconfig file whose context "fake" points at it)."""
    server = FakeKubernetes()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
        f"clusters:\n- name: fake\n  cluster:\n    server: {server.url}\n"
        f"users:\n- name: weir\n  user:\n    token: {KUBERNETES_TOKEN}\n"
        "contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: weir\n"
    )
    yield server, str(kubeconfig)
    server.shutdown()
