"""The image pipeline with the real buildah and a real OCI registry (Debian's
docker-registry) on loopback.

No base image can be pulled from the internet here: the tests build one from Debian's
packages (debootstrap: python3 and venv) once, and keep it in buildah's storage."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import joblib
import numpy
import pytest
import requests
from django.test import override_settings

from tests.dataplane.conftest import free_port
from tests.workers.conftest import BUILDAH, ONLINE, ROOT, RegistryServer, pipeline_settings
from workers.builds import image
from workers.builds.environment import EnvironmentSpec, parse_conda
from workers.errors import PermanentError


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
