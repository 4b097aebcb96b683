"""The environment of an MLflow model deployed without one: read from the model's own files
in the blob store (MLmodel, python_env.yaml, conda.yaml, requirements.txt)."""

from __future__ import annotations

import pytest

from controlplane.blobstore import storage
from controlplane.core.models import Workspace
from tests.mlflow_models import save_diabetes_model
from workers import replica_plan
from workers.builds.environment import spec_for_mlflow_model
from workers.errors import PermanentError

CONDA = """
channels: [conda-forge]
dependencies:
  - python=3.10.12
  - pip<=23.1.2
  - pip:
      - mlflow==2.7.1
      - scikit-learn==1.1.2
name: mlflow-env
"""


def store(folder_files: dict[str, bytes]) -> str:
    """Write files into the test workspace's datastore; returns the URI of their folder."""
    account = storage.account_for(Workspace.objects.get())
    for name, content in folder_files.items():
        storage.write_blob(account, account.default_container, f"mlflow/{name}", [content])
    return "azureml://datastores/workspaceblobstore/paths/mlflow/"


def test_a_saved_models_files_make_its_environment(workspace, tmp_path):
    folder = save_diabetes_model(tmp_path / "model")
    files = {path.name: path.read_bytes() for path in folder.iterdir()}
    uri = store({f"model/{name}": content for name, content in files.items()})

    read = replica_plan.mlflow_files(Workspace.objects.get(), uri)
    assert sorted(read) == ["MLmodel", "conda.yaml", "python_env.yaml", "requirements.txt"]
    spec = spec_for_mlflow_model(read)
    requirements = files["requirements.txt"].decode().split()
    assert spec.packages == tuple(requirements)
    assert any(p.startswith("mlflow==") for p in spec.packages)
    python = files["python_env.yaml"].decode().split()[1]  # "python: 3.11.7"
    assert spec.python == ".".join(python.split(".")[:2])
    assert spec.image == f"python:{spec.python}-slim"


def test_the_top_most_mlmodel_folder_is_read(workspace):
    uri = store(
        {
            "outer/MLmodel": b"flavors: {}\n",
            "outer/requirements.txt": b"mlflow-skinny==3.1.0\n",
            "outer/inner/MLmodel": b"flavors: {}\n",
            "outer/inner/requirements.txt": b"mlflow==1.0\n",
        }
    )
    read = replica_plan.mlflow_files(Workspace.objects.get(), uri)
    assert read["requirements.txt"] == "mlflow-skinny==3.1.0\n"


def test_a_folder_without_mlmodel_is_refused_naming_the_file(workspace):
    uri = store({"model/model.pkl": b"pickle"})
    with pytest.raises(PermanentError) as refused:
        replica_plan.mlflow_files(Workspace.objects.get(), uri)
    assert refused.value.code == "MLflowModelInvalid" and "MLmodel" in refused.value.message


def test_python_env_and_requirements_win_over_conda():
    spec = spec_for_mlflow_model(
        {
            "conda.yaml": CONDA,
            "python_env.yaml": "python: 3.12.1\nbuild_dependencies: [pip]\n",
            "requirements.txt": "# pinned\nmlflow==2.7.1\n\nscikit-learn==1.1.2  # the model\n",
        }
    )
    assert spec.python == "3.12"
    assert spec.packages == ("mlflow==2.7.1", "scikit-learn==1.1.2")


def test_conda_alone_gives_python_and_the_pip_section():
    spec = spec_for_mlflow_model({"MLmodel": "flavors: {}\n", "conda.yaml": CONDA})
    assert spec.python == "3.10"
    assert spec.packages == ("mlflow==2.7.1", "scikit-learn==1.1.2")


def test_mlflow_is_added_when_the_model_names_none():
    assert spec_for_mlflow_model({"requirements.txt": "scikit-learn\n"}).packages == (
        "scikit-learn",
        "mlflow-skinny",
    )
    skinny = spec_for_mlflow_model({"requirements.txt": "mlflow-skinny[extras]>=2\n"})
    assert skinny.packages == ("mlflow-skinny[extras]>=2",)


def test_requirement_options_are_refused():
    with pytest.raises(PermanentError) as refused:
        spec_for_mlflow_model({"requirements.txt": "-r other.txt\nmlflow\n"})
    assert refused.value.code == "RequirementNotSupported" and "-r other.txt" in str(
        refused.value.message
    )
