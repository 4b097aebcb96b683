"""Reading conda files into pip requirements, and the content hash that keys builds."""

import pytest

from workers.builds.environment import EnvironmentSpec, parse_conda
from workers.errors import PermanentError

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
