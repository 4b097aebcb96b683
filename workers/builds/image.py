"""The image pipeline: an environment as an OCI image, built once per content hash.

The tag is the environment's content hash (the one the local venv cache uses). It is looked
up in the workspace's registry (WEIR_REGISTRY), then in the shared registry
(WEIR_SHARED_REGISTRY); only on a miss is a build context generated (a Dockerfile on the
environment's image — or WEIR_IMAGE_BASE —, its pip requirements and Weir's inference
server), built with buildah (daemonless: ``--isolation chroot``) and pushed to the
workspace's registry. Every step's output goes to ``say`` (the deployment's
StorageInitializer log); a failed build or a refused push is a PermanentError with the
cause.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests
from django.conf import settings

from dataplane.inference.command import MLFLOW_SCRIPT, server_command
from workers.builds.environment import SERVER_PACKAGES, EnvironmentSpec, run_step
from workers.errors import PermanentError, last_error

SERVER_SOURCE = Path(__file__).resolve().parents[2] / "dataplane"
MANIFEST_TYPES = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)
# Where an image's replica finds its files (the Kubernetes init container puts them there).
APP_DIR = "/var/azureml-app"
# Where an image holds the inference server's ``dataplane`` package (DOCKERFILE's COPY).
SERVER_DIR = "/opt/weir/server"
SERVER_PORT = 5001
BUILD_CA = "/run/weir-build-ca.crt"


def replica_command(scoring_script: str | None) -> list[str]:
    """How a container of an environment image serves ``scoring_script`` from APP_DIR, or,
    for an MLflow model deployed without one (None), the server's own MLflow script."""
    entry_script = (
        f"{APP_DIR}/code/{scoring_script}" if scoring_script else f"{SERVER_DIR}/{MLFLOW_SCRIPT}"
    )
    return server_command(
        entry_script=entry_script,
        model_dir=f"{APP_DIR}/azureml-models",
        host="0.0.0.0",
        port=SERVER_PORT,
    )


# PIP_CERT, when given, names CA certificates mounted for the build (WEIR_BUILD_CA_BUNDLE).
DOCKERFILE = """\
FROM {base}
ARG PIP_CERT=""
RUN python{python} -m venv /opt/weir/venv
COPY requirements.txt /opt/weir/requirements.txt
RUN if [ -z "$PIP_CERT" ]; then unset PIP_CERT; fi; \\
    /opt/weir/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-input \\
    -r /opt/weir/requirements.txt
COPY dataplane /opt/weir/server/dataplane
ENV PATH=/opt/weir/venv/bin:$PATH PYTHONPATH=/opt/weir/server PYTHONUNBUFFERED=1 \\
    AZUREML_MODEL_DIR={app}/azureml-models
EXPOSE {port}
CMD {command}
"""


@dataclass(frozen=True)
class Registry:
    address: str  # host:port

    @property
    def insecure(self) -> bool:
        return self.address in settings.WEIR_INSECURE_REGISTRIES

    def reference(self, tag: str) -> str:
        return f"{self.address}/{settings.WEIR_IMAGE_REPOSITORY}:{tag}"

    def has(self, tag: str) -> bool:
        scheme = "http" if self.insecure else "https"
        url = f"{scheme}://{self.address}/v2/{settings.WEIR_IMAGE_REPOSITORY}/manifests/{tag}"
        try:
            response = requests.head(url, headers={"Accept": MANIFEST_TYPES}, timeout=10)
        except requests.RequestException:
            return False  # unreachable counts as a miss; the push will say what is wrong
        return response.status_code == 200


def registries() -> list[Registry]:
    found = [Registry(settings.WEIR_REGISTRY)]
    if settings.WEIR_SHARED_REGISTRY:
        found.append(Registry(settings.WEIR_SHARED_REGISTRY))
    return found


def ensure_image(spec: EnvironmentSpec, say: Callable[[str], None]) -> str:
    """The image reference for ``spec``: an existing one, or one built and pushed now."""
    tag = spec.content_hash()
    for registry in registries():
        if registry.has(tag):
            say(f"image {registry.reference(tag)} exists; not building")
            return registry.reference(tag)
    target = registries()[0]
    reference = target.reference(tag)
    with tempfile.TemporaryDirectory(prefix="weir-image-") as context:
        write_context(spec, Path(context))
        say(f"building image {reference} (base {base_image(spec)})")
        build(reference, Path(context), say)
    push(target, reference, say)
    return reference


def base_image(spec: EnvironmentSpec) -> str:
    base = settings.WEIR_IMAGE_BASE or spec.image
    if not base:
        raise PermanentError("EnvironmentNotSupported", "the environment names no image")
    return base


def write_context(spec: EnvironmentSpec, context: Path) -> None:
    """Dockerfile, requirements.txt (the server's packages and the environment's) and the
    inference server's code."""
    (context / "Dockerfile").write_text(
        DOCKERFILE.format(
            base=base_image(spec),
            python=spec.python,
            app=APP_DIR,
            port=SERVER_PORT,
            command=json.dumps(replica_command("score.py")),
        )
    )
    (context / "requirements.txt").write_text("\n".join([*SERVER_PACKAGES, *spec.packages]) + "\n")
    shutil.copytree(
        SERVER_SOURCE,
        context / "dataplane",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "router", "agent"),
    )


def build(reference: str, context: Path, say: Callable[[str], None]) -> None:
    command = [*settings.WEIR_BUILDAH, "bud", "--isolation", "chroot"]
    if settings.WEIR_BUILD_CA_BUNDLE:
        command += ["--volume", f"{settings.WEIR_BUILD_CA_BUNDLE}:{BUILD_CA}:ro"]
        command += ["--build-arg", f"PIP_CERT={BUILD_CA}"]
    command += ["-t", reference, str(context)]
    output = run_step(command, say, check=False)
    if output is not None:
        raise PermanentError(
            "ImageBuildFailed",
            f"building {reference} failed: {last_error(output)}",
            details=output.splitlines()[-20:],
        )


def push(registry: Registry, reference: str, say: Callable[[str], None]) -> None:
    say(f"pushing {reference}")
    command = [*settings.WEIR_BUILDAH, "push"]
    if registry.insecure:
        command.append("--tls-verify=false")
    command += [reference, f"docker://{reference}"]
    output = run_step(command, say, check=False)
    if output is not None:
        raise PermanentError(
            "ImagePushFailed",
            f"registry {registry.address} refused {reference}: {last_error(output)}",
            details=output.splitlines()[-20:],
        )
    say(f"pushed {reference}")
