"""The scoring script of an MLflow model deployed to a batch endpoint without one (Azure's
no-code batch deployment), run by the driver with ``--mlflow``.

init() loads the model folder under AZUREML_MODEL_DIR (the one holding an ``MLmodel`` file,
or MLFLOW_MODEL_FOLDER's) with ``mlflow.pyfunc.load_model``. run() reads each file of the
mini-batch by its extension and calls predict() once per file:

- ``.csv`` (pandas.read_csv), ``.parquet`` and ``.pqt`` (pandas.read_parquet): a DataFrame,
  its columns read as the types the model's signature names;
- ``.png .jpg .jpeg .tiff .bmp .gif``: the image as an ndarray (Pillow must be installed);
- any other file fails the mini-batch, naming it (so does a file that cannot be read).

It returns one line per row of each file, ``row,prediction,file_name`` as csv writes them
(a prediction holding a comma is quoted): the row's 0-based index in its file, the
prediction for it, the file's name. A prediction of one value per row (an array, a Series,
a one-column DataFrame) is written as that value; a row of several values (a 2-D array, a
DataFrame of several columns) as JSON; a prediction that is not per row (a dict of named
outputs) as one row, in JSON.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from pathlib import Path

from dataplane.inference import mlflow_model

log = logging.getLogger("weir.batch.mlflow")

TABLES = {".csv": "read_csv", ".parquet": "read_parquet", ".pqt": "read_parquet"}
IMAGES = (".png", ".jpg", ".jpeg", ".tiff", ".bmp", ".gif")

model = None
signature_inputs: list[dict] | None = None  # the MLmodel file's inputs, JSON-decoded


class UnreadableFile(ValueError):
    pass


def init():
    global model, signature_inputs
    import mlflow.pyfunc

    folder = mlflow_model.find_folder(
        os.environ["AZUREML_MODEL_DIR"], os.environ.get("MLFLOW_MODEL_FOLDER")
    )
    log.info("loading the MLflow model in %s", folder)
    model = mlflow.pyfunc.load_model(str(folder))
    if model.metadata.signature is not None:
        inputs = model.metadata.signature.to_dict().get("inputs")
        signature_inputs = json.loads(inputs) if inputs else None


def run(mini_batch: list[str]) -> list[str]:
    lines = []
    for path in map(Path, mini_batch):
        predictions = per_row(model.predict(read(path)))
        lines += [csv_line(row, cell(value), path.name) for row, value in enumerate(predictions)]
    return lines


def read(path: Path):
    """What predict() takes for the file at ``path``, by its extension."""
    suffix = path.suffix.lower()
    if suffix in TABLES:
        import pandas

        frame = getattr(pandas, TABLES[suffix])(path)
        return mlflow_model.typed_frame(frame, signature_inputs)
    if suffix in IMAGES:
        import numpy

        try:
            from PIL import Image
        except ImportError:
            raise UnreadableFile(
                f"{path.name}: reading images needs Pillow in the deployment's environment"
            ) from None
        with Image.open(path) as image:
            return numpy.asarray(image)
    raise UnreadableFile(
        f"{path.name}: an MLflow model deployed without a scoring script reads "
        f"{', '.join((*TABLES, *IMAGES))} files, not {suffix or 'files without an extension'}"
    )


def per_row(predictions) -> list:
    """The predictions as JSON values, one per row of the input."""
    values = mlflow_model.jsonable(predictions)
    return values if isinstance(values, list) else [values]


def cell(value) -> str:
    if isinstance(value, dict) and len(value) == 1:  # a record of a one-column DataFrame
        (value,) = value.values()
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def csv_line(*fields) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()
