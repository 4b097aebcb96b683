"""Azure's batch endpoint samples (examples/batch) made ready to run, and what they must
produce. Azure's samples deploy an XGBoost pipeline this repository does not copy, so the
tests train a stand-in on the samples' own labelled data, as the samples' training does: a
scikit-learn pipeline (one-hot encoding of ``thal``, the other columns passed through) ending
in a decision tree, saved as ``model/model.pkl`` (Sample A, a custom model) and as an MLflow
model (Sample B). The expected outputs are computed here: Sample A's by running its unchanged
scoring script in this process, Sample B's with the MLflow model loaded as a user loads it."""

from __future__ import annotations

import importlib.util
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "batch"
DATA = EXAMPLES / "deploy-models" / "heart-classifier-mlflow" / "data"
TRAINING = EXAMPLES / "deploy-pipelines" / "training-with-components" / "data" / "train"
PARQUET_DRIVER = EXAMPLES / "deploy-models" / "custom-outputs-parquet" / "code" / "batch_driver.py"
# Sample A's deployment.yml: settings.mini_batch_size.
MINI_BATCH_SIZE = 2


@dataclass
class Samples:
    """What a test deploys and what it must get back."""

    model: Path  # a folder named "model" holding model.pkl: register as custom_model
    mlflow_model: Path  # a folder named "model" saved by MLflow: register as mlflow_model
    parquet: dict[str, Path]  # Sample A: output file name -> the parquet file expected
    predictions: list[tuple[int, int, str]]  # Sample B: (row, prediction, file) per input row


def input_files() -> list[Path]:
    """The files a job over DATA scores, in the order a repeatable run takes them."""
    return sorted(DATA.glob("*.csv"))


def train():
    """The pipeline fitted on TRAINING's heart.csv (without ``target``), and the features it saw."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder
    from sklearn.tree import DecisionTreeClassifier

    frame = pd.read_csv(TRAINING / "heart.csv")
    features, labels = frame.drop(columns="target"), frame["target"]
    encode = ColumnTransformer([("thal", OneHotEncoder(), ["thal"])], remainder="passthrough")
    pipeline = Pipeline([("encode", encode), ("classify", DecisionTreeClassifier(random_state=0))])
    return pipeline.fit(features, labels), features


def prepare(target: Path) -> Samples:
    """Save both models under ``target`` and compute the outputs both samples must give."""
    import mlflow.sklearn
    from mlflow.models import infer_signature

    pipeline, features = train()
    model = target / "custom" / "model"
    model.mkdir(parents=True)
    with open(model / "model.pkl", "wb") as file:
        pickle.dump(pipeline, file)
    mlflow_model = target / "mlflow" / "model"
    mlflow.sklearn.save_model(
        pipeline,
        str(mlflow_model),
        signature=infer_signature(features, pipeline.predict(features)),
        # Azure's samples' format; MLflow's default (skops) needs one more package.
        serialization_format="cloudpickle",
    )
    return Samples(
        model=model,
        mlflow_model=mlflow_model,
        parquet=run_parquet_driver(model, target / "expected-parquet"),
        predictions=mlflow_predictions(mlflow_model),
    )


def run_parquet_driver(model: Path, output: Path) -> dict[str, Path]:
    """Run Sample A's scoring script, unchanged, as a batch job runs it: the registered model
    folder inside AZUREML_MODEL_DIR, the job's output folder in AZUREML_BI_OUTPUT_PATH,
    ``init()`` once, then ``run()`` per mini-batch of file paths. Returns what it wrote."""
    output.mkdir(parents=True)
    spec = importlib.util.spec_from_file_location("custom_outputs_parquet_driver", PARQUET_DRIVER)
    driver = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(driver)
    files = [str(path) for path in input_files()]
    settings = {"AZUREML_MODEL_DIR": str(model.parent), "AZUREML_BI_OUTPUT_PATH": str(output)}
    with mock.patch.dict(os.environ, settings):
        driver.init()
        for start in range(0, len(files), MINI_BATCH_SIZE):
            driver.run(files[start : start + MINI_BATCH_SIZE])
    return {path.name: path for path in sorted(output.glob("*.parquet"))}


def mlflow_predictions(folder: Path) -> list[tuple[int, int, str]]:
    """What Sample B's predictions.csv must hold: per input file, per row, the row's index in
    its file, the model's prediction and the file's name (how-to-mlflow-batch.md, "Analyze
    outputs"). The model is loaded as pyfunc, which enforces its signature, as the no-code
    deployment does."""
    import mlflow.pyfunc
    import pandas as pd

    model = mlflow.pyfunc.load_model(str(folder))
    rows = []
    for path in input_files():
        predictions = model.predict(pd.read_csv(path))
        rows += [(row, int(value), path.name) for row, value in enumerate(predictions)]
    return rows
