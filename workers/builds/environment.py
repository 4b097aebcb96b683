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
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml
from django.conf import settings

from workers.builds import installers
from workers.errors import PermanentError, last_error

# What every replica environment needs to run dataplane.inference (pinned as in
# requirements.txt).
SERVER_PACKAGES = ("httptools==0.9.0", "uvloop==0.23.0")
READY_MARKER = ".weir-environment"
PYTHON_NAME = re.compile(r"^python(3\.\d+)$")
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
# The image an MLflow model's environment is built on (unless WEIR_IMAGE_BASE says another):
# the official image of the Python version the model was saved with.
MLFLOW_BASE_IMAGE = "python:{python}-slim"
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


def spec_for_mlflow_model(files: dict[str, str]) -> EnvironmentSpec:
    """The build spec of an MLflow model deployed without an environment, from its files
    (name -> text): Python from python_env.yaml, else conda.yaml; packages from
    requirements.txt, else conda.yaml's pip section; and mlflow-skinny when they name no
    MLflow, which the built-in scoring script loads the model with. PermanentError for
    files that cannot be read."""
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    packages: list[str] = []
    if "conda.yaml" in files:
        python, packages = parse_conda(files["conda.yaml"], python)
    if "python_env.yaml" in files:
        python = _python_env_version(files["python_env.yaml"]) or python
    if "requirements.txt" in files:
        packages = parse_requirements(files["requirements.txt"])
    names = {re.split(r"[\s\[<>=!~;@]", p, maxsplit=1)[0].lower() for p in packages}
    if not names & {"mlflow", "mlflow-skinny", "mlflow_skinny"}:
        packages.append("mlflow-skinny")
    image = MLFLOW_BASE_IMAGE.format(python=python)
    return EnvironmentSpec(python=python, image=image, packages=tuple(packages))


def _python_env_version(text: str) -> str | None:
    """X.Y of MLflow's python_env.yaml (``python: 3.11.7``)."""
    try:
        document = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise PermanentError(
            "InvalidPythonEnvFile", f"the model's python_env.yaml is not valid YAML: {exc}"
        ) from None
    version = str(document.get("python") or "") if isinstance(document, dict) else ""
    return ".".join(version.split(".")[:2]) or None


def parse_requirements(text: str) -> list[str]:
    """The requirement lines of a pip requirements file (comments and blank lines left out).
    Options (``-r``, ``-c``, ``--index-url``…) name files or indexes outside the model: a
    PermanentError says so."""
    packages = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-"):
            raise PermanentError(
                "RequirementNotSupported",
                f"the model's requirements.txt has '{line}': only package requirements are "
                "installed (no -r, -c or index options)",
            )
        packages.append(line)
    return packages


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
    """A ``pythonX.Y`` on this machine that really runs and can make a venv: found on PATH
    (skipping shims that cannot run it, such as pyenv's for a version it lacks) or among
    pyenv, asdf and uv installs. PermanentError naming the versions there are otherwise."""
    for candidate in _candidates(f"python{python}"):
        if _runs(candidate, python):
            return str(candidate)
    available = sorted(
        {m.group(1) for c in _candidates("python3.*") if (m := PYTHON_NAME.match(c.name))},
        key=lambda v: tuple(int(p) for p in v.split(".")),
    )
    usable = [v for v in available if any(_runs(c, v) for c in _candidates(f"python{v}"))]
    raise PermanentError(
        "PythonVersionNotAvailable",
        f"the environment asks for Python {python}, which this machine does not have "
        f"(it has {', '.join(usable) or 'none'}); install it (e.g. `uv python install "
        f"{python}` or `pyenv install {python}`) or ask for one of those in the conda file",
    )


def _candidates(pattern: str) -> list[Path]:
    """Executables named ``pattern`` on PATH, then in pyenv, asdf and uv installs."""
    home = Path.home()
    places = [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p]
    for root in (
        Path(os.environ.get("PYENV_ROOT", home / ".pyenv")) / "versions",
        Path(os.environ.get("ASDF_DATA_DIR", home / ".asdf")) / "installs" / "python",
        Path(os.environ.get("UV_PYTHON_INSTALL_DIR", home / ".local/share/uv/python")),
    ):
        places += sorted(root.glob("*/bin"))
    found, seen = [], set()
    for place in places:
        for path in sorted(place.glob(pattern)):
            if path.is_file() and os.access(path, os.X_OK) and path not in seen:
                seen.add(path)
                found.append(path)
    return found


def _runs(candidate: Path, python: str) -> bool:
    """Whether ``candidate`` starts and is Python ``python``; for the pip installer, also
    whether it has venv and ensurepip, which ``python -m venv`` needs (Debian ships them
    apart, in python3-venv) and uv does without."""
    modules = "sys, venv, ensurepip" if settings.WEIR_ENVIRONMENT_INSTALLER == "pip" else "sys"
    check = f"import {modules}; print('%d.%d' % sys.version_info[:2])"
    try:
        done = subprocess.run(
            [str(candidate), "-c", check], capture_output=True, text=True, timeout=20
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0 and done.stdout.strip() == python


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
    installer = installers.for_build(say)
    run_step(installer.venv(interpreter(spec.python), building), say, env=installer.env)
    requirements = [*SERVER_PACKAGES, *spec.packages]
    command = installer.install(building, requirements)
    output = run_step(command, say, check=False, env=installer.env)
    if output is not None:
        shutil.rmtree(building, ignore_errors=True)
        raise PermanentError(
            "EnvironmentBuildFailed", installer.failure(output), details=output.splitlines()[-20:]
        )
    marker = {"packages": requirements, "installer": installer.name}
    (building / READY_MARKER).write_text(json.dumps(marker))
    shutil.rmtree(target, ignore_errors=True)
    building.rename(target)
    say(f"environment {target.name[:12]} is ready")


def run_step(
    command: list[str], say: Callable[[str], None], check: bool = True, env: dict | None = None
) -> str | None:
    """Run a build step (in ``env``, else the worker's environment), streaming its output to
    the log. Returns None on success, or the output when ``check`` is False and the step
    failed."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    lines = []
    for line in process.stdout:
        lines.append(line.rstrip())
        say(line.rstrip())
    if process.wait() == 0:
        return None
    output = "\n".join(lines)
    if check:
        message = f"{Path(command[0]).name} failed: {last_error(output)}"
        raise PermanentError("EnvironmentBuildFailed", message, details=lines[-20:])
    return output
