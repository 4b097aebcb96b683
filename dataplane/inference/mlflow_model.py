"""An MLflow model served without a scoring script (Azure's no-code deployment): where its
folder is, the request bodies it takes, and its predictions as JSON.

The bodies are Azure's, the model's input under ``input_data`` with optional ``params``
beside it (the shapes of Azure's MLflow scoring script):

- ``{"input_data": {"columns": [...], "index": [...], "data": [[...], ...]}}``: a DataFrame in
  pandas' split orient (``index`` may be left out);
- ``{"input_data": [[...], ...]}``: a tensor;
- ``{"input_data": {"name": [...], ...}}``: named tensors (or whole columns);
- ``{"input_data": [{"column": value, ...}, ...]}``: a DataFrame's records;

and those of MLflow's own scoring server (``mlflow models serve``, 2.0 and later), so a
request written for it runs unchanged: ``dataframe_split``, ``dataframe_records``,
``instances`` and ``inputs``, with ``params``.

Bodies are read and checked without pandas or numpy (:func:`parse`); only
:func:`model_input` and :func:`jsonable` import them, from the model's own environment.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from dataplane.inference.errors import BadInput

MLMODEL = "MLmodel"
SPLIT, RECORDS, TENSOR, NAMED_TENSORS = "split", "records", "tensor", "named_tensors"
AZURE_KEY = "input_data"
# MLflow's keys, and what each one's value may be.
MLFLOW_KEYS = {
    "dataframe_split": (SPLIT,),
    "dataframe_records": (RECORDS,),
    "instances": (TENSOR, NAMED_TENSORS, RECORDS),
    "inputs": (TENSOR, NAMED_TENSORS, RECORDS),
}
INPUT_KEYS = (AZURE_KEY, *MLFLOW_KEYS)
EXPECTED = (
    'a JSON object with the model\'s input under "input_data" (a DataFrame in split orient: '
    '{"columns": [...], "index": [...], "data": [[...]]}; a tensor: [[...]]; named tensors: '
    '{"name": [...]}) and optional "params"; MLflow\'s "dataframe_split", "dataframe_records", '
    '"instances" and "inputs" are taken too'
)


@dataclass(frozen=True)
class ModelInput:
    """A request's input, checked: ``kind`` says what ``data`` becomes for predict() (for
    SPLIT, ``data`` is the split document: columns, data and index)."""

    kind: str
    data: object
    params: dict | None = None


def find_folder(model_dir: str | Path, name: str | None = None) -> Path:
    """The MLflow model folder under AZUREML_MODEL_DIR: ``name`` when given (Azure's
    MLFLOW_MODEL_FOLDER), else the one holding an ``MLmodel`` file nearest the top."""
    root = Path(model_dir)
    if name:
        folder = root / name
        if not (folder / MLMODEL).is_file():
            raise FileNotFoundError(f"{folder} holds no {MLMODEL} file")
        return folder
    found = sorted(root.rglob(MLMODEL), key=lambda path: (len(path.parts), str(path)))
    for path in found:
        if path.is_file():
            return path.parent
    raise FileNotFoundError(
        f"no {MLMODEL} file under {root}: an mlflow_model is a folder saved by MLflow"
    )


def parse(body: str | bytes) -> ModelInput:
    """The model input a request body names; BadInput saying what is wrong otherwise."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        if not body:
            raise BadInput(f"The request body is empty. Expected {EXPECTED}.") from None
        raise BadInput(f"The request body is not JSON ({exc}). Expected {EXPECTED}.") from None
    if not isinstance(document, dict):
        raise BadInput(f"The request body is a JSON {_kind(document)}. Expected {EXPECTED}.")
    keys = [key for key in INPUT_KEYS if key in document]
    if not keys:
        raise BadInput(f"The request body has no model input. Expected {EXPECTED}.")
    if len(keys) > 1:
        raise BadInput(f"The request body has more than one input ({', '.join(keys)}); send one.")
    key = keys[0]
    params = document.get("params")
    if params is not None and not isinstance(params, dict):
        raise BadInput(f'"params" must be a JSON object, not a {_kind(params)}.')
    value = document[key]
    allowed = MLFLOW_KEYS.get(key, (SPLIT, TENSOR, NAMED_TENSORS, RECORDS))
    kind = _shape(value, key, allowed)
    if kind == SPLIT:
        value = {
            "columns": value["columns"],
            "data": value["data"],
            "index": _split_index(value, key),
        }
    return ModelInput(kind, value, params)


def _shape(value, key: str, allowed: tuple[str, ...]) -> str:
    """Which of ``allowed`` the value of ``key`` is, checked."""
    if isinstance(value, dict) and SPLIT in allowed and {"columns", "data"} <= value.keys():
        _check_split(value, key)
        return SPLIT
    if isinstance(value, dict) and NAMED_TENSORS in allowed:
        if not value:
            raise BadInput(f'"{key}" is an empty object: name at least one input.')
        return NAMED_TENSORS
    if isinstance(value, list) and value and all(isinstance(row, dict) for row in value):
        if RECORDS in allowed:
            return RECORDS
    elif isinstance(value, list) and TENSOR in allowed:
        if not value:
            raise BadInput(f'"{key}" is an empty list: send at least one row.')
        return TENSOR
    if allowed == (SPLIT,):
        raise BadInput(
            f'"{key}" must be a DataFrame in split orient: {{"columns": [...], "data": [[...]]}}.'
        )
    if allowed == (RECORDS,):
        raise BadInput(f'"{key}" must be a list of records: [{{"column": value, ...}}, ...].')
    raise BadInput(f'"{key}" cannot be a JSON {_kind(value)}. Expected {EXPECTED}.')


def _check_split(value: dict, key: str) -> None:
    columns, data = value["columns"], value["data"]
    if not isinstance(columns, list) or not all(isinstance(c, (str, int)) for c in columns):
        raise BadInput(f'"{key}.columns" must be a list of column names.')
    if not isinstance(data, list) or not data:
        raise BadInput(f'"{key}.data" must be a list of rows, with at least one row.')
    for number, row in enumerate(data):
        if not isinstance(row, list) or len(row) != len(columns):
            raise BadInput(
                f'"{key}.data[{number}]" must be a list of {len(columns)} values, one per column.'
            )


def _split_index(value: dict, key: str) -> list | None:
    index = value.get("index")
    if index is None:
        return None
    if not isinstance(index, list) or len(index) != len(value["data"]):
        raise BadInput(f'"{key}.index" must be a list with one label per row of "data".')
    return index


def _kind(value) -> str:
    return {dict: "object", list: "list", str: "string", bool: "boolean"}.get(
        type(value), "null" if value is None else "number"
    )


def model_input(parsed: ModelInput, signature_inputs: list[dict] | None = None):
    """What predict() takes for ``parsed``: a DataFrame, an ndarray or a dict of ndarrays.

    JSON has one kind of number; as Azure's and MLflow's servers do, values are read as the
    types the signature's inputs (the MLmodel file's, JSON-decoded) name, so a 1 sent for a
    double column is 1.0. predict() then enforces the signature itself.
    """
    import numpy
    import pandas

    types = _numpy_types(signature_inputs or [])
    kind = parsed.kind.replace("_", " ")
    try:
        if parsed.kind == SPLIT:
            split = parsed.data
            frame = pandas.DataFrame(split["data"], columns=split["columns"], index=split["index"])
            return _typed_columns(frame, types)
        if parsed.kind == RECORDS:
            return _typed_columns(pandas.DataFrame.from_records(parsed.data), types)
        if parsed.kind == TENSOR:
            return numpy.asarray(parsed.data, dtype=types.get(None))
        return {
            name: numpy.asarray(value, dtype=types.get(name)) for name, value in parsed.data.items()
        }
    except (ValueError, TypeError) as exc:  # ragged rows, values of another type
        raise BadInput(
            f"The input cannot be read as a {kind} of the model's types: {exc}"
        ) from None


# MLflow's column types that JSON values are converted to (strings and the rest stay as sent).
COLUMN_TYPES = {
    "boolean": "bool",
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
}


def _numpy_types(specs: list[dict]) -> dict:
    """Input name (None for one unnamed tensor) -> the numpy type its values are read as."""
    types = {}
    for spec in specs:
        if spec.get("type") == "tensor":
            dtype = (spec.get("tensor-spec") or {}).get("dtype")
            if dtype and dtype not in ("object", "str"):
                types[spec.get("name")] = dtype
        elif spec.get("type") in COLUMN_TYPES:
            types[spec.get("name")] = COLUMN_TYPES[spec["type"]]
    if len(specs) > 1:
        types.pop(None, None)  # several unnamed inputs: no one type for a whole tensor
    return types


def typed_frame(frame, signature_inputs: list[dict] | None = None):
    """``frame`` with its columns read as the types the signature's inputs name (a file's
    integers in a double column become floats), as :func:`model_input` reads a request's."""
    return _typed_columns(frame, _numpy_types(signature_inputs or []))


def _typed_columns(frame, types: dict):
    for name, dtype in types.items():
        if name in frame.columns:
            try:
                frame[name] = frame[name].astype(dtype)
            except (ValueError, TypeError) as exc:
                raise BadInput(f'Column "{name}" cannot be read as {dtype}: {exc}') from None
    return frame


def jsonable(value):
    """Predictions as JSON values, as Azure's MLflow scoring script returns them: an ndarray
    or Series as a list, a DataFrame as its records, numpy scalars as Python ones."""
    import numpy
    import pandas

    if isinstance(value, pandas.DataFrame):
        return [jsonable(record) for record in value.to_dict(orient="records")]
    if isinstance(value, (pandas.Series, numpy.ndarray)):
        return jsonable(value.tolist())
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, numpy.generic):
        return jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # NaN (a missing value) has no JSON spelling
    if isinstance(value, (pandas.Timestamp, pandas.Timedelta)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value
