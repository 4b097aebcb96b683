"""Environments as Python virtual environments, built once per content hash.

The hash covers everything that changes the result: the Python version, the image name,
the pip requirements (from ``condaFile``) and the packages the inference server needs. A
build looks the hash up first, builds only on a miss, and holds a per-hash file lock so
concurrent builds of one environment become one. The image pipeline keys images by the same
hash.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from django.conf import settings

from workers.errors import PermanentError

# What every replica environment needs to run dataplane.inference (pinned as in
# requirements.txt).
SERVER_PACKAGES = ("httptools==0.9.0", "uvloop==0.23.0")
READY_MARKER = ".weir-environment"
# Conda packages that are system libraries or toolchains, with nothing to install from pip.
CONDA_ONLY = frozenset(
    {
        "cudatoolkit",
        "cudnn",
        "nccl",
        "mkl",
        "mkl-service",
        "mkl_fft",
        "mkl_random",
        "intel-openmp",
        "libgcc-ng",
        "libstdcxx-ng",
        "libgfortran-ng",
        "_libgcc_mutex",
        "openssl",
        "ca-certificates",
        "libffi",
        "zlib",
        "ncurses",
        "readline",
        "sqlite",
        "tk",
        "xz",
        "cuda",
        "cuda-toolkit",
    }
)
CONDA_SPEC = re.compile(
    r"^(?:[\w.-]+::)?(?P<name>[A-Za-z0-9_.-]+)\s*(?P<op>==|=|>=|<=|>|<|!=)?\s*(?P<version>[^=\s]*)"
)


@dataclass(frozen=True)
class EnvironmentSpec:
    python: str  # "3.11"
    image: str
    packages: tuple[str, ...]

    def content_hash(self) -> str:
        document = {
            "python": self.python,
            "image": self.image,
            "packages": sorted(self.packages),
            "server": list(SERVER_PACKAGES),
        }
        return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def spec_for(environment) -> EnvironmentSpec:
    """The build spec of an EnvironmentVersion; PermanentError for what cannot be built."""
    if environment.build:
        raise PermanentError(
            "EnvironmentNotSupported",
            f"environment {environment} is built from a Docker context, which the local "
            "backend does not run; give it an image and a conda file",
        )
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    packages: list[str] = []
    if environment.conda_file:
        python, packages = parse_conda(environment.conda_file, python)
    return EnvironmentSpec(python=python, image=environment.image or "", packages=tuple(packages))


def parse_conda(text: str, default_python: str) -> tuple[str, list[str]]:
    """Python version and pip requirements of a conda YAML file."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PermanentError(
            "InvalidCondaFile", f"the conda file is not valid YAML: {exc}"
        ) from None
    python, packages, conda_only = default_python, [], []
    for entry in document.get("dependencies") or []:
        if isinstance(entry, dict):
            packages += [str(line) for line in entry.get("pip") or []]
            continue
        match = CONDA_SPEC.match(str(entry).strip())
        if not match:
            raise PermanentError("InvalidCondaFile", f"cannot read conda dependency '{entry}'")
        name, op, version = match["name"], match["op"], match["version"]
        if name == "python":
            if version:
                python = ".".join(version.split(".")[:2])
        elif name == "pip":
            continue
        elif name.lower() in CONDA_ONLY:
            conda_only.append(str(entry))
        elif op == "=" and version:
            # conda's "=" matches a version prefix: numpy=1.26 is any 1.26.x.
            packages.append(f"{name}=={version.split('=')[0]}.*")
        else:
            packages.append(f"{name}{op or ''}{version}")
    if conda_only:
        raise PermanentError(
            "CondaPackageWithoutPipEquivalent",
            f"conda dependencies without a pip equivalent: {', '.join(conda_only)}",
        )
    return python, packages


def interpreter(python: str) -> str:
    found = shutil.which(f"python{python}")
    if found is None:
        raise PermanentError(
            "PythonVersionNotAvailable",
            f"the environment asks for Python {python}, which this machine does not have",
        )
    return found


def ensure(spec: EnvironmentSpec, say: Callable[[str], None]) -> Path:
    """The environment's directory: reused when built, built (once) when not."""
    root = Path(settings.WEIR_ENVIRONMENT_DIR)
    target = root / spec.content_hash()
    if (target / READY_MARKER).exists():
        say(f"environment {target.name[:12]} is cached; reusing it")
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f"{target.name}.lock", "w") as lock:
        # Concurrent builds of the same environment wait here and then find it built.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / READY_MARKER).exists():
            say(f"environment {target.name[:12]} was built meanwhile; reusing it")
            return target
        _build(spec, target, say)
    return target


def _build(spec: EnvironmentSpec, target: Path, say: Callable[[str], None]) -> None:
    building = target.with_name(target.name + ".building")
    shutil.rmtree(building, ignore_errors=True)
    say(
        f"building environment {target.name[:12]} (python {spec.python}, image {spec.image or '-'})"
    )
    run_step([interpreter(spec.python), "-m", "venv", str(building)], say)
    requirements = [*SERVER_PACKAGES, *spec.packages]
    pip = [str(building / "bin" / "pip"), "install", "--disable-pip-version-check", "--no-input"]
    output = run_step([*pip, *requirements], say, check=False)
    if output is not None:
        shutil.rmtree(building, ignore_errors=True)
        missing = re.findall(r"No matching distribution found for (\S+)", output)
        detail = f"no such package: {', '.join(missing)}" if missing else "pip install failed"
        raise PermanentError("EnvironmentBuildFailed", detail, details=output.splitlines()[-20:])
    (building / READY_MARKER).write_text(json.dumps({"packages": requirements}))
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    say(f"environment {target.name[:12]} is ready")


def run_step(command: list[str], say: Callable[[str], None], check: bool = True) -> str | None:
    """Run a build step, streaming its output to the log. Returns None on success, or the
    output when ``check`` is False and the step failed."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip())
        say(line.rstrip())
    if process.wait() == 0:
        return None
    if check:
        raise PermanentError("EnvironmentBuildFailed", f"{command[0]} failed", details=lines[-20:])
    return "\n".join(lines)
