"""The install files: docker-compose.yml (valid for docker-compose, which needs no engine to
check it) and deploy/kubernetes/weir.yaml (valid against Kubernetes' schemas). Each runs
every Weir service with the command bin/start runs for it, with a health check, and with
settings the README documents. Neither was brought up here: no container engine or cluster
runs on these machines."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[1]
WEIR_SERVICES = {"migrate", "web", "blob", "worker", "builder", "batch", "agent", "router"}
# Where a command's own words end and its settings (addresses, paths) begin.
SETTINGS_FLAGS = {"--bind", "--port", "--host", "--schedule", "-Q", "--concurrency"}


def compose_config() -> dict:
    assert shutil.which("docker-compose"), (
        "docker-compose is not installed: bin/test installs it (Debian package docker-compose)"
    )
    done = subprocess.run(
        ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def runs_what_bin_start_runs(name: str, command: list[str]) -> None:
    start = re.sub(r"\\\n\s*", "", (ROOT / "bin" / "start").read_text())
    start = " ".join(start.split())
    words = []
    for word in command:
        if word in SETTINGS_FLAGS:
            break
        words.append(word)
    assert " ".join(words) in start, f"{name}: {' '.join(words)!r} is not what bin/start runs"


def test_compose_file_is_valid_and_runs_what_bin_start_runs():
    services = compose_config()["services"]
    assert set(services) == {"postgres", "redis", "registry", *WEIR_SERVICES}
    for name in WEIR_SERVICES:
        runs_what_bin_start_runs(name, services[name]["command"])
        if name != "migrate":
            assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in ("postgres", "redis", "registry"):
        assert services[name]["healthcheck"]["test"]


def test_compose_settings_are_the_documented_ones():
    readme = (ROOT / "README.md").read_text()
    environment = compose_config()["services"]["web"]["environment"]
    for variable in environment:
        assert f"`{variable}`" in readme, f"{variable} is not in the README's settings"


def test_kubernetes_manifests_are_valid_and_run_what_bin_start_runs():
    documents = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "weir.yaml").read_text()))
    version = kubernetes_validate.latest_version()
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)
        if document["kind"] == "Deployment":
            # What the schemas cannot see: every mount names a volume of its pod.
            pod = document["spec"]["template"]["spec"]
            volumes = {v["name"] for v in pod.get("volumes", [])}
            for container in pod.get("initContainers", []) + pod["containers"]:
                for mount in container.get("volumeMounts", []):
                    assert mount["name"] in volumes, (document["metadata"]["name"], mount)
    (weir,) = [
        d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "weir"
    ]
    pod = weir["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["initContainers"] + pod["containers"]}
    assert set(containers) == WEIR_SERVICES
    for name, container in containers.items():
        runs_what_bin_start_runs(name, container["command"])
        if name != "migrate":
            assert container.get("readinessProbe") or container.get("livenessProbe"), name
    (router,) = [
        d for d in documents if d["metadata"]["name"] == "weir-router" and d["kind"] == "Deployment"
    ]
    (container,) = router["spec"]["template"]["spec"]["containers"]
    runs_what_bin_start_runs("router", container["command"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    readme = (ROOT / "README.md").read_text()
    (config,) = [d for d in documents if d["kind"] == "ConfigMap"]
    for variable in config["data"]:
        assert f"`{variable}`" in readme, f"{variable} is not in the README's settings"
