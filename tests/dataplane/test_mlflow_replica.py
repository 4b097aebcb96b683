"""The built-in MLflow scoring script in a real inference server process, serving models the
tests save with MLflow: Azure's input_data shapes and MLflow's, params, bad input as 400s,
and the swagger of the model's signature."""

import textwrap

import pytest
import requests

from dataplane.inference.command import MLFLOW_SCRIPT
from tests.dataplane.conftest import ROOT
from tests.mlflow_models import (
    ROWS,
    features,
    local_predictions,
    save_diabetes_model,
    split_request,
)

SCRIPT = ROOT / MLFLOW_SCRIPT
SCALED = """
import mlflow
from mlflow.pyfunc import PythonModel


class Scaled(PythonModel):
    def predict(self, context, model_input, params=None):
        return (model_input.sum(axis=1) * (params or {}).get("scale", 1.0)).tolist()


mlflow.models.set_model(Scaled())
"""


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """AZUREML_MODEL_DIRs, each holding one saved model folder (its name kept, as Azure lays
    them out)."""
    root = tmp_path_factory.mktemp("mlflow")
    dirs = {}
    for kind in ("frame", "tensor"):
        save_diabetes_model(root / kind / "model", tensor=kind == "tensor")
        dirs[kind] = root / kind
    return dirs


def post(served, document) -> requests.Response:
    return requests.post(f"{served.url}/score", json=document, timeout=30)


BAD_INPUT = [
    ({"input_data": {"columns": ["age"], "data": [[0.1]]}}, "cannot score this input"),
    ({"input_data": {"columns": ["age", "sex"], "data": [[0.1]]}}, "input_data.data[0]"),
    ({"input_data": {"columns": ["age"], "data": [["old"]]}}, 'Column "age"'),
    ({"input_data": [[0.1] * 10]}, "cannot score this input"),
    ({"data": [[0.1]]}, "no model input"),
    ({"input_data": [[0.1]], "params": "fast"}, '"params" must be a JSON object'),
]


def test_a_model_with_named_columns_scores_azures_and_mlflows_shapes(replica, model_dirs):
    served = replica(SCRIPT, model_dirs["frame"], wait=False)
    served.wait_ready(timeout=60)
    expected = local_predictions(model_dirs["frame"] / "model")
    frame = features()[:ROWS]
    split = split_request()
    without_index = {key: v for key, v in split["input_data"].items() if key != "index"}
    for document in (
        split,
        {"input_data": without_index},
        {"input_data": {column: frame[column].tolist() for column in frame.columns}},
        {"input_data": frame.to_dict(orient="records")},
        {"dataframe_split": without_index},
        {"dataframe_records": frame.to_dict(orient="records")},
    ):
        response = post(served, document)
        assert response.status_code == 200, (document, response.text)
        assert response.json() == pytest.approx(expected)
    whole_numbers = {"input_data": {"columns": list(frame.columns), "data": [[1] * 10]}}
    assert post(served, whole_numbers).status_code == 200  # read as the doubles they are

    for document, says in BAD_INPUT:
        response = post(served, document)
        assert response.status_code == 400, (document, response.text)
        assert says in response.json()["message"], response.text
    not_json = requests.post(f"{served.url}/score", data=b"rows", timeout=30)
    assert not_json.status_code == 400 and "not JSON" in not_json.json()["message"]

    swagger = requests.get(f"{served.url}/swagger.json").json()
    input_data = swagger["definitions"]["ServiceInput"]["properties"]["input_data"]
    assert input_data["properties"]["columns"]["items"]["enum"] == list(frame.columns)
    example = swagger["definitions"]["ServiceInput"]["example"]
    assert post(served, example).status_code == 200  # the model's own input example
    assert swagger["definitions"]["ServiceOutput"]["items"] == {
        "type": "number",
        "format": "double",
    }


def test_a_tensor_model_takes_lists(replica, model_dirs):
    served = replica(SCRIPT, model_dirs["tensor"], wait=False)
    served.wait_ready(timeout=60)
    expected = local_predictions(model_dirs["tensor"] / "model", tensor=True)
    rows = features(tensor=True)[:ROWS].tolist()
    for document in ({"input_data": rows}, {"inputs": rows}, {"instances": rows}):
        response = post(served, document)
        assert response.status_code == 200, (document, response.text)
        assert response.json() == pytest.approx(expected)
    narrow = post(served, {"input_data": [row[:3] for row in rows]})
    assert narrow.status_code == 400 and "cannot score this input" in narrow.json()["message"]
    swagger = requests.get(f"{served.url}/swagger.json").json()
    input_data = swagger["definitions"]["ServiceInput"]["properties"]["input_data"]
    assert input_data["items"] == {"type": "array", "items": {"type": "number", "format": "double"}}


def test_params_reach_the_models_predict(replica, tmp_path):
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    code = tmp_path / "scaled.py"
    code.write_text(textwrap.dedent(SCALED))
    frame = features()[:ROWS]
    sums = frame.sum(axis=1).tolist()
    signature = infer_signature(frame, sums, params={"scale": 1.0})
    mlflow.pyfunc.save_model(
        str(tmp_path / "models" / "scaled"), python_model=str(code), signature=signature
    )
    served = replica(SCRIPT, tmp_path / "models", wait=False)
    served.wait_ready(timeout=60)
    request = split_request()
    assert post(served, request).json() == pytest.approx(sums)
    doubled = post(served, {**request, "params": {"scale": 2.0}})
    assert doubled.json() == pytest.approx([2 * s for s in sums])
    swagger = requests.get(f"{served.url}/swagger.json").json()
    params = swagger["definitions"]["ServiceInput"]["properties"]["params"]
    assert params["properties"]["scale"]["default"] == 1.0
