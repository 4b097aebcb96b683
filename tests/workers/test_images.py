"""The image pipeline with the real buildah and a real OCI registry (Debian's
docker-registry) on loopback.

No base image can be pulled from the internet here: the tests build one from Debian's
packages (debootstrap: python3 and venv) once, and keep it in buildah's storage."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import joblib
import numpy
import pytest
import requests
from django.test import override_settings

from tests.dataplane.conftest import free_port
from workers.builders import image
from workers.environments import EnvironmentSpec, parse_conda
from workers.errors import PermanentError

ROOT = Path(__file__).resolve().parents[2]
ONLINE = ROOT / "examples" / "online"
BASE = "localhost/weir-test-base:bookworm"
BUILDAH = ["buildah", "--storage-driver", "vfs"]
PACKAGES = {
    "buildah": "buildah",
    "docker-registry": "docker-registry",
    "debootstrap": "debootstrap",
}


def ensure_tools() -> None:
    missing = [package for tool, package in PACKAGES.items() if not shutil.which(tool)]
    if missing:
        subprocess.run(["apt-get", "install", "-y", "-q", *missing], check=True)


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


def small(*packages: str) -> EnvironmentSpec:
    return EnvironmentSpec(
        python="3.11",
        image="mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest",
        packages=packages,
    )


def test_built_once_per_hash_and_a_new_conda_file_gives_a_new_image(registry, base_image):
    first, second = [], []
    with pipeline_settings(registry, base_image):
        reference = image.ensure_image(small("six==1.16.0"), first.append)
        assert (
            reference
            == f"{registry.address}/weir/environments:{small('six==1.16.0').content_hash()}"
        )
        assert registry.tags() == [small("six==1.16.0").content_hash()]
        assert any(line.startswith("building image") for line in first)
        assert any(line.startswith("pushed") for line in first)

        # The same environment again: found in the registry, nothing built or pushed.
        assert image.ensure_image(small("six==1.16.0"), second.append) == reference
        assert second == [f"image {reference} exists; not building"]

        # A changed conda file: another hash, another image.
        changed = small("six==1.16.0", "idna==3.10")
        assert image.ensure_image(changed, [].append) != reference
        assert registry.tags() == sorted(
            [small("six==1.16.0").content_hash(), changed.content_hash()]
        )


def test_a_shared_registry_is_looked_up_too(registry, base_image, tmp_path):
    shared = RegistryServer(tmp_path / "shared")
    try:
        spec = small("six==1.16.0")
        with pipeline_settings(shared, base_image):
            image.ensure_image(spec, [].append)
        said = []
        with (
            pipeline_settings(registry, base_image),
            override_settings(
                WEIR_SHARED_REGISTRY=shared.address,
                WEIR_INSECURE_REGISTRIES=[registry.address, shared.address],
            ),
        ):
            assert image.ensure_image(spec, said.append).startswith(shared.address)
        reference = image.Registry(shared.address).reference(spec.content_hash())
        assert said == [f"image {reference} exists; not building"]
        assert registry.tags() == []
    finally:
        shared.stop()


def test_the_image_serves_the_sample_model(registry, base_image, models_dir):
    python, packages = parse_conda(
        (ONLINE / "model-1" / "environment" / "conda.yaml").read_text(), "3.11"
    )
    spec = EnvironmentSpec(python=python, image="unused", packages=tuple(packages))
    with pipeline_settings(registry, base_image):
        reference = image.ensure_image(spec, [].append)
    container = subprocess.run(
        [*BUILDAH, "from", "--pull=false", reference], check=True, capture_output=True, text=True
    ).stdout.strip()
    port = free_port()
    server = subprocess.Popen(
        [
            *BUILDAH,
            "run",
            "--isolation",
            "chroot",
            "-v",
            f"{ONLINE / 'model-1' / 'onlinescoring'}:{image.APP_DIR}/code:ro",
            "-v",
            f"{models_dir}:{image.APP_DIR}/azureml-models:ro",
            container,
            "--",
            "python",
            "-m",
            "dataplane.inference",
            "--entry-script",
            f"{image.APP_DIR}/code/score.py",
            "--model-dir",
            f"{image.APP_DIR}/azureml-models",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    sample = json.loads((ONLINE / "model-1" / "sample-request.json").read_text())
    try:
        deadline = time.monotonic() + 60
        answer = None
        while time.monotonic() < deadline:
            try:
                answer = requests.post(f"http://127.0.0.1:{port}/score", json=sample, timeout=5)
                break
            except requests.ConnectionError:
                time.sleep(0.3)
        assert answer is not None and answer.status_code == 200, answer and answer.text
        model = joblib.load(models_dir / "model" / "sklearn_regression_model.pkl")
        expected = model.predict(numpy.array(sample["data"])).tolist()
        assert answer.json() == pytest.approx(expected)
    finally:
        server.terminate()
        server.wait(timeout=20)
        subprocess.run([*BUILDAH, "rm", container], capture_output=True)


def test_a_failed_build_and_a_refused_push_name_their_cause(registry, base_image, tmp_path):
    said = []
    with pipeline_settings(registry, base_image), pytest.raises(PermanentError) as failed:
        image.ensure_image(small("weir-no-such-package==0.0.1"), said.append)
    assert failed.value.code == "ImageBuildFailed"
    assert "weir-no-such-package" in "\n".join(said)
    assert registry.tags() == []

    read_only = RegistryServer(tmp_path / "ro", read_only=True)
    try:
        with pipeline_settings(read_only, base_image), pytest.raises(PermanentError) as refused:
            image.ensure_image(small("six==1.16.0"), [].append)
        assert refused.value.code == "ImagePushFailed"
        assert read_only.address in str(refused.value)
    finally:
        read_only.stop()


@pytest.fixture(scope="session")
def models_dir() -> Path:
    import sys

    sys.path.insert(0, str(ROOT / "examples"))
    import make_models

    return make_models.make()["model-1"].parent
