"""The scoring script of an MLflow model deployed without one (Azure's no-code deployment).

init() loads the model folder under AZUREML_MODEL_DIR with ``mlflow.pyfunc.load_model``, from
the environment the model's own files describe, and declares the swagger of its signature;
run() takes the bodies dataplane.inference.mlflow_model reads and answers the predictions as
JSON. Input the model refuses (its signature, its own checks) is a 400 naming the cause.
"""

from __future__ import annotations

import inspect
import json
import logging
import os

from dataplane.inference import mlflow_model, swagger
from dataplane.inference.errors import BadInput

log = logging.getLogger("weir.inference.mlflow")

model = None
takes_params = False
signature: dict = {}  # the MLmodel file's inputs, outputs and params, JSON-decoded


def init():
    global model, takes_params, signature
    import mlflow.pyfunc

    folder = mlflow_model.find_folder(
        os.environ["AZUREML_MODEL_DIR"], os.environ.get("MLFLOW_MODEL_FOLDER")
    )
    log.info("loading the MLflow model in %s", folder)
    model = mlflow.pyfunc.load_model(str(folder))
    takes_params = "params" in inspect.signature(model.predict).parameters
    if model.metadata.signature is None:
        log.warning("the model has no signature: /swagger.json has no input or output schema")
    else:
        signature = {
            part: json.loads(text) if text else None
            for part, text in model.metadata.signature.to_dict().items()
        }
        run.swagger_schemas = _schemas(signature, model.metadata, folder)


def run(raw_data):
    parsed = mlflow_model.parse(raw_data)
    data = mlflow_model.model_input(parsed, signature.get("inputs"))
    try:
        if takes_params:
            predictions = model.predict(data, params=parsed.params)
        else:
            predictions = model.predict(data)
    except Exception as exc:
        if _refused_input(exc):
            raise BadInput(f"The model cannot score this input: {exc}") from exc
        raise
    return mlflow_model.jsonable(predictions)


def _refused_input(exc: Exception) -> bool:
    """Whether predict() refused the input rather than failed: MLflow's 4xx errors (the
    signature's enforcement) and the errors models raise for data of the wrong shape or
    type."""
    from mlflow.exceptions import MlflowException

    if isinstance(exc, MlflowException):
        return exc.get_http_status_code() < 500
    return isinstance(exc, (ValueError, TypeError, KeyError))


def _schemas(described: dict, metadata, folder) -> tuple[dict, dict]:
    example = None
    info = getattr(metadata, "saved_input_example_info", None) or {}
    if info.get("type") == "dataframe" and info.get("artifact_path"):
        try:
            example = json.loads((folder / info["artifact_path"]).read_text())
        except (OSError, ValueError):
            log.warning("the model's input example cannot be read; the swagger makes one up")
    return swagger.mlflow_schemas(
        described["inputs"], described.get("outputs"), described.get("params"), example
    )
