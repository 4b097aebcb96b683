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
