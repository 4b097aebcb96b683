"""The batch acceptance test's material (tests/batch_samples.py) checked on its own, without
a server: what Azure's samples must produce, and the published script that must fail."""

from __future__ import annotations

import glob
import importlib.util
import os
from unittest import mock

import pandas as pd
import pytest

from tests.batch_samples import EXAMPLES, input_files, prepare

CUSTOM_MLFLOW_DRIVER = (
    EXAMPLES / "deploy-models" / "heart-classifier-mlflow" / "deployment-custom" / "code"
)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return prepare(tmp_path_factory.mktemp("batch-samples"))


def test_the_parquet_script_writes_one_scored_file_per_input_file(samples):
    assert list(samples.parquet) == [f"heart-unlabeled-{i}.parquet" for i in range(4)]
    for path in input_files():
        scored = pd.read_parquet(samples.parquet[f"{path.stem}.parquet"])
        unscored = pd.read_csv(path)
        assert scored.drop(columns="prediction").equals(unscored)
        assert set(scored["prediction"]) <= {0, 1}
    assert [len(pd.read_parquet(p)) for p in samples.parquet.values()] == [100, 100, 100, 3]


def test_both_models_predict_the_same(samples):
    """The pickled pipeline (Sample A) and the MLflow model (Sample B) are one model."""
    from_parquet = [
        (row, int(prediction), name.replace(".parquet", ".csv"))
        for name, path in samples.parquet.items()
        for row, prediction in enumerate(pd.read_parquet(path)["prediction"])
    ]
    assert from_parquet == samples.predictions
    assert len(samples.predictions) == 303


def test_the_published_mlflow_script_cannot_score(samples):
    """Azure's deployment-custom/code/batch_driver.py, given the MLflow model as a job gives
    it: the job that runs it must fail."""
    spec = importlib.util.spec_from_file_location(
        "heart_mlflow_driver", CUSTOM_MLFLOW_DRIVER / "batch_driver.py"
    )
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    with mock.patch.dict(os.environ, {"AZUREML_MODEL_DIR": str(samples.mlflow_model.parent)}):
        assert glob.glob(os.environ["AZUREML_MODEL_DIR"] + "/*/") == [f"{samples.mlflow_model}/"]
        # MLflow 3 has no mlflow.pyfunc.load.
        with pytest.raises(AttributeError, match="load"):
            driver.init()
        # Past init(), run() reads model_output_names before it assigns it.
        driver.model = driver.mlflow.pyfunc.load_model(str(samples.mlflow_model))
        driver.model_input_types = None
        with pytest.raises(UnboundLocalError, match="model_output_names"):
            driver.run([str(path) for path in input_files()[:2]])
