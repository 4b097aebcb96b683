"""Reading conda files into pip requirements, the content hash that keys builds, and the
builds themselves: with uv, pip's settings carried over, or with pip."""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from workers.builds.environment import READY_MARKER, EnvironmentSpec, ensure, parse_conda
from workers.builds.installers import Uv, pip_config, read_pip_config, uv_options
from workers.errors import PermanentError

PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"

CONDA = """
name: model-env
channels: [conda-forge]
dependencies:
  - python=3.11
  - conda-forge::numpy=1.26
  - scikit-learn>=1.4
  - pip
  - pip:
      - joblib==1.4.2
      - inference-schema
"""


def test_conda_dependencies_become_pip_requirements():
    python, packages = parse_conda(CONDA, "3.12")
    assert python == "3.11"
    assert packages == ["numpy==1.26.*", "scikit-learn>=1.4", "joblib==1.4.2", "inference-schema"]


def test_conda_packages_without_a_pip_equivalent_are_named():
    conda = "dependencies:\n  - python=3.11\n  - cudatoolkit=11.8\n  - mkl\n  - numpy\n"
    with pytest.raises(PermanentError) as refused:
        parse_conda(conda, "3.11")
    assert refused.value.code == "CondaPackageWithoutPipEquivalent"
    assert "cudatoolkit=11.8" in refused.value.message and "mkl" in refused.value.message


def test_a_conda_file_that_is_not_yaml_is_refused():
    with pytest.raises(PermanentError) as refused:
        parse_conda("dependencies: [unclosed", "3.11")
    assert refused.value.code == "InvalidCondaFile"


def test_the_hash_covers_what_changes_the_environment():
    base = EnvironmentSpec("3.11", "python:3.11-slim", ("numpy==1.26.*", "joblib"))
    assert (
        base.content_hash()
        == EnvironmentSpec("3.11", "python:3.11-slim", ("joblib", "numpy==1.26.*")).content_hash()
    )
    for changed in (
        EnvironmentSpec("3.12", base.image, base.packages),
        EnvironmentSpec(base.python, "python:3.12-slim", base.packages),
        EnvironmentSpec(base.python, base.image, ("numpy==1.27.*", "joblib")),
    ):
        assert changed.content_hash() != base.content_hash()


SHIM = '#!/bin/sh\necho "pyenv: $(basename $0): command not found" >&2\nexit 127\n'


def test_an_interpreter_that_cannot_run_is_passed_over(tmp_path, monkeypatch):
    import sys

    from workers.builds.environment import interpreter

    # A pyenv shim for a version pyenv lacks, first on PATH, as on the machine that failed.
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    shims = tmp_path / "shims"
    shims.mkdir()
    shim = shims / f"python{version}"
    shim.write_text(SHIM)
    shim.chmod(0o755)
    real = tmp_path / "real"
    real.mkdir()
    (real / f"python{version}").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", f"{shims}:{real}")
    for variable in ("PYENV_ROOT", "ASDF_DATA_DIR", "UV_PYTHON_INSTALL_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / "none"))
    assert interpreter(version) == str(real / f"python{version}")


def test_a_missing_version_names_the_ones_there_are(tmp_path, monkeypatch):
    import sys

    from workers.builds.environment import interpreter

    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    real = tmp_path / "bin"
    real.mkdir()
    (real / f"python{version}").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(real))
    for variable in ("PYENV_ROOT", "ASDF_DATA_DIR", "UV_PYTHON_INSTALL_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / "none"))
    with pytest.raises(PermanentError) as failure:
        interpreter("3.2")
    assert failure.value.code == "PythonVersionNotAvailable"
    assert f"it has {version})" in failure.value.message
    assert "uv python install 3.2" in failure.value.message


#
# Building: uv (the default) and pip, real processes
#
PIP_LISTING = """\
:env:.find-links='/srv/wheels'
:env:.disable-pip-version-check='1'
global.cert='/etc/ssl/certs/corporate.pem'
global.extra-index-url='https://mirror.example/simple file:///opt/pypi/simple'
global.find-links='/opt/wheels'
global.index-url='https://global.example/simple'
install.index-url='https://install.example/simple'
install.constraint='/etc/pip/constraints.txt'
install.trusted-host='mirror.example'
install.use-feature='truststore'
freeze.index-url='https://freeze.example/simple'
"""


def test_pip_settings_are_read_in_pip_order():
    # global, then install, then PIP_* variables; other commands' sections do not apply.
    assert read_pip_config(PIP_LISTING) == {
        "cert": "/etc/ssl/certs/corporate.pem",
        "extra-index-url": "https://mirror.example/simple file:///opt/pypi/simple",
        "find-links": "/srv/wheels",
        "index-url": "https://install.example/simple",
        "constraint": "/etc/pip/constraints.txt",
        "trusted-host": "mirror.example",
        "use-feature": "truststore",
        "disable-pip-version-check": "1",
    }


def test_pip_settings_become_uv_arguments():
    options = uv_options(read_pip_config(PIP_LISTING), environ={})
    assert options.index == [
        "--extra-index-url",
        "https://mirror.example/simple",
        "--extra-index-url",
        "file:///opt/pypi/simple",
        "--find-links",
        "/srv/wheels",
        "--index-url",
        "https://install.example/simple",
        "--allow-insecure-host",
        "mirror.example",
        # pip picks the best version across its indexes; uv would stop at the first.
        "--index-strategy",
        "unsafe-best-match",
    ]
    assert options.install == ["--constraint", "/etc/pip/constraints.txt"]
    assert options.env == {"SSL_CERT_FILE": "/etc/ssl/certs/corporate.pem"}
    assert options.dropped == ["use-feature"]


def test_uv_trusts_the_system_certificates_unless_given_some():
    assert uv_options({}, environ={}).index == ["--system-certs"]
    assert uv_options({}, environ={"SSL_CERT_FILE": "/etc/ssl/cert.pem"}).index == []
    only_pip = uv_options({"no-index": "true", "pre": "1", "timeout": "60"}, environ={})
    assert only_pip.index == ["--no-index", "--system-certs"]
    assert only_pip.install == ["--prerelease", "allow"]
    assert only_pip.env == {"UV_HTTP_TIMEOUT": "60"}


def test_pip_settings_are_read_through_pip(tmp_path, monkeypatch):
    config = tmp_path / "pip.conf"
    config.write_text(
        "[global]\nindex-url = https://global.example/simple\n"
        "extra-index-url =\n    https://a.example/simple\n    https://b.example/simple\n"
        "[install]\nindex_url = https://install.example/simple\n"
    )
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    monkeypatch.setenv("PIP_FIND_LINKS", "/srv/wheels")
    read = pip_config()
    assert read["index-url"] == "https://install.example/simple"
    assert read["extra-index-url"].split() == [
        "https://a.example/simple",
        "https://b.example/simple",
    ]
    assert read["find-links"] == "/srv/wheels"


def make_wheel(directory: Path, name: str = "weir_probe", version: str = "1.0") -> None:
    """A pure-Python wheel no index has: installable only from find-links."""
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}.py": "VALUE = 42\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: weir-tests\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = hashlib.sha256(text.encode()).digest()
        encoded = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        record.append(f"{path},sha256={encoded},{len(text.encode())}")
    files[f"{dist}/RECORD"] = "\n".join([*record, f"{dist}/RECORD,,"]) + "\n"
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(directory / f"{name}-{version}-py3-none-any.whl", "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)


@pytest.fixture
def build(tmp_path, monkeypatch):
    """Builds an environment of ``packages`` with an installer, in the data directory as in
    production (next to uv's cache), from pip's settings plus find-links to a wheelhouse
    holding weir_probe; returns (its directory, the build's log). Removed afterwards."""
    wheelhouse = tmp_path / "wheelhouse"
    make_wheel(wheelhouse)
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheelhouse))
    built: list[Path] = []

    def build(installer: str, packages: tuple[str, ...]) -> tuple[Path, list[str]]:
        # An image name of its own: a fresh hash, so the build is never a cache hit.
        spec = EnvironmentSpec(PYTHON, f"test-{uuid.uuid4().hex}", packages)
        built.append(Path(settings.WEIR_ENVIRONMENT_DIR) / spec.content_hash())
        log: list[str] = []
        with override_settings(WEIR_ENVIRONMENT_INSTALLER=installer):
            return ensure(spec, log.append), log

    yield build
    for path in built:
        shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(path.with_name(f"{path.name}.building"), ignore_errors=True)
        path.with_name(f"{path.name}.lock").unlink(missing_ok=True)


def run_in(environment: Path, code: str) -> str:
    done = subprocess.run(
        [str(environment / "bin" / "python"), "-c", code], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_uv_builds_an_environment_that_imports_what_it_asked_for(build):
    environment, log = build("uv", ("weir_probe==1.0",))
    assert run_in(environment, "import weir_probe, httptools, uvloop; print(weir_probe.VALUE)")
    assert json.loads((environment / READY_MARKER).read_text())["installer"] == "uv"
    # pip's find-links (PIP_FIND_LINKS here) reached uv: nothing else has weir_probe.
    assert any("pip settings carried over" in line and "find-links" in line for line in log)
    # Hard links into uv's cache, not copies; and pip in the venv, as python -m venv leaves it.
    module = run_in(environment, "import weir_probe; print(weir_probe.__file__)")
    assert Path(module).stat().st_nlink > 1
    assert run_in(environment, "import pip; print('pip')") == "pip"


def test_pip_still_builds_when_chosen(build):
    environment, _ = build("pip", ("weir_probe==1.0",))
    assert run_in(environment, "import weir_probe, httptools, uvloop; print(weir_probe.VALUE)")
    assert json.loads((environment / READY_MARKER).read_text())["installer"] == "pip"
    assert (environment / "bin" / "pip").exists()


def test_a_package_no_index_has_is_named(build):
    with pytest.raises(PermanentError) as failure:
        build("uv", ("weir-no-such-package-4242",))
    assert failure.value.code == "EnvironmentBuildFailed"
    assert failure.value.message == "no such package: weir-no-such-package-4242"
    assert not list(Path(settings.WEIR_ENVIRONMENT_DIR).glob("*.building"))


def test_the_index_pip_is_given_is_the_one_uv_seeds_the_venv_from(build, tmp_path, monkeypatch):
    for variable in [name for name in os.environ if name.startswith("PIP_")]:
        monkeypatch.delenv(variable)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # pip reads no configuration file
    empty = tmp_path / "simple"
    empty.mkdir()
    monkeypatch.setenv("PIP_INDEX_URL", empty.as_uri())
    with pytest.raises(PermanentError) as failure:
        build("uv", ())
    assert failure.value.message.startswith("uv failed: ")
    assert "seed packages" in failure.value.message
    assert "pip was not found in the package registry" in json.dumps(failure.value.details)


def test_uv_reads_which_requirement_was_missing():
    # What uv 0.13 prints for a name no index has, and for a version there is not.
    output = (
        "error: No solution found when resolving dependencies\n"
        "  cause: Because there is no version of six==99.0 and you require six==99.0, we can "
        "conclude that your requirements are unsatisfiable.\n"
    )
    assert Uv(uv_options({}, {})).failure(output) == "no such package: six==99.0"
    conflict = "  cause: Because you require numpy==2.4.6 and numpy==1.0, we can conclude ...\n"
    assert Uv(uv_options({}, {})).failure(conflict) == (
        "uv pip install failed: Because you require numpy==2.4.6 and numpy==1.0, we can "
        "conclude ..."
    )


NO_ENSUREPIP = "raise ImportError('ensurepip is in python3-venv')\n"


def test_uv_takes_an_interpreter_without_ensurepip_and_pip_does_not(tmp_path, monkeypatch):
    from workers.builds.environment import interpreter

    # Debian's python3 without python3-venv: it runs, but cannot make a venv on its own.
    shadow = tmp_path / "shadow" / "ensurepip"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(NO_ENSUREPIP)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    python = bin_dir / f"python{PYTHON}"
    python.write_text(f'#!/bin/sh\nPYTHONPATH={shadow.parent} exec {sys.executable} "$@"\n')
    python.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    for variable in ("PYENV_ROOT", "ASDF_DATA_DIR", "UV_PYTHON_INSTALL_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / "none"))
    with override_settings(WEIR_ENVIRONMENT_INSTALLER="uv"):
        assert interpreter(PYTHON) == str(python)
    with override_settings(WEIR_ENVIRONMENT_INSTALLER="pip"), pytest.raises(PermanentError):
        interpreter(PYTHON)
