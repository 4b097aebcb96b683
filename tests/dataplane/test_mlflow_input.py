"""The request bodies an MLflow model's built-in scoring script takes (Azure's ``input_data``
and MLflow's own shapes), what they become for predict(), the predictions as JSON, and the
swagger made from a model's signature."""

import json

import numpy
import pandas
import pytest

from dataplane.inference import swagger
from dataplane.inference.errors import BadInput
from dataplane.inference.mlflow_model import (
    NAMED_TENSORS,
    RECORDS,
    SPLIT,
    TENSOR,
    ModelInput,
    find_folder,
    jsonable,
    model_input,
    parse,
)

COLUMNS = [
    {"type": "double", "name": "age", "required": True},
    {"type": "long", "name": "visits", "required": True},
    {"type": "string", "name": "city", "required": True},
]
TENSOR_INPUT = [{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 2]}}]


def body(document) -> bytes:
    return json.dumps(document).encode()


def refused(document) -> str:
    with pytest.raises(BadInput) as error:
        parse(document if isinstance(document, (str, bytes)) else body(document))
    return str(error.value)


@pytest.mark.parametrize(
    "document, kind",
    [
        ({"input_data": {"columns": ["a"], "index": [7], "data": [[1]]}}, SPLIT),
        ({"input_data": {"columns": ["a"], "data": [[1]]}}, SPLIT),
        ({"input_data": [[1, 2], [3, 4]]}, TENSOR),
        ({"input_data": {"tokens": [[1, 2]], "mask": [[1, 0]]}}, NAMED_TENSORS),
        ({"input_data": [{"a": 1}, {"a": 2}]}, RECORDS),
        ({"dataframe_split": {"columns": ["a"], "data": [[1]]}}, SPLIT),
        ({"dataframe_records": [{"a": 1}]}, RECORDS),
        ({"instances": [[1, 2]]}, TENSOR),
        ({"inputs": {"tokens": [[1, 2]]}}, NAMED_TENSORS),
        ({"inputs": [{"a": 1}]}, RECORDS),
    ],
)
def test_each_shape_is_read_as_its_kind(document, kind):
    assert parse(body(document)).kind == kind


def test_a_split_document_keeps_its_columns_rows_and_index_and_params_come_along():
    parsed = parse(
        body(
            {
                "input_data": {"columns": ["a", "b"], "index": [4, 5], "data": [[1, 2], [3, 4]]},
                "params": {"top_k": 3},
            }
        )
    )
    assert parsed == ModelInput(
        SPLIT,
        {"columns": ["a", "b"], "data": [[1, 2], [3, 4]], "index": [4, 5]},
        {"top_k": 3},
    )
    assert parse(body({"input_data": {"columns": ["a"], "data": [[1]]}})).data["index"] is None


@pytest.mark.parametrize(
    "document, says",
    [
        ("", "empty"),
        ("{not json", "not JSON"),
        ([1, 2], "JSON list"),
        ({"data": [[1]]}, "no model input"),
        ({"input_data": [[1]], "inputs": [[1]]}, "more than one input"),
        ({"input_data": [[1]], "params": [1]}, '"params" must be a JSON object'),
        ({"input_data": "text"}, "cannot be a JSON string"),
        ({"input_data": []}, "empty list"),
        ({"input_data": {}}, "empty object"),
        ({"input_data": {"columns": "a", "data": [[1]]}}, '"input_data.columns"'),
        ({"input_data": {"columns": ["a", "b"], "data": [[1]]}}, '"input_data.data[0]"'),
        ({"input_data": {"columns": ["a"], "data": []}}, "at least one row"),
        ({"input_data": {"columns": ["a"], "index": [1, 2], "data": [[1]]}}, '"input_data.index"'),
        ({"dataframe_split": [[1]]}, "split orient"),
        ({"dataframe_records": [[1]]}, "list of records"),
        ({"instances": "text"}, '"instances" cannot be a JSON string'),
    ],
)
def test_bad_bodies_are_refused_saying_what_is_wrong(document, says):
    assert says in refused(document)


def test_split_and_records_become_dataframes_typed_by_the_signature():
    split = parse(
        body(
            {
                "input_data": {
                    "columns": ["age", "visits", "city"],
                    "index": [10, 11],
                    "data": [[30, 2, "Oslo"], [41.5, 3, "Turku"]],
                }
            }
        )
    )
    frame = model_input(split, COLUMNS)
    assert list(frame.columns) == ["age", "visits", "city"]
    assert list(frame.index) == [10, 11]
    assert frame["age"].dtype == numpy.float64 and frame["visits"].dtype == numpy.int64
    assert frame["age"].tolist() == [30.0, 41.5]  # a JSON 30 is read as the double it is
    records = model_input(parse(body({"dataframe_records": [{"age": 1, "city": "Oslo"}]})), COLUMNS)
    assert isinstance(records, pandas.DataFrame) and records["age"].dtype == numpy.float64


def test_a_value_the_signature_cannot_hold_names_its_column():
    parsed = parse(body({"input_data": {"columns": ["age"], "data": [["old"]]}}))
    with pytest.raises(BadInput, match='Column "age" cannot be read as float64'):
        model_input(parsed, COLUMNS)


def test_tensors_become_arrays_of_the_signatures_dtype():
    tensor = model_input(parse(body({"input_data": [[1, 2], [3, 4]]})), TENSOR_INPUT)
    assert tensor.dtype == numpy.float32 and tensor.shape == (2, 2)
    named = model_input(
        parse(body({"inputs": {"x": [[1, 2]], "y": [[0]]}})),
        [
            {"type": "tensor", "name": "x", "tensor-spec": {"dtype": "float64", "shape": [-1, 2]}},
            {"type": "tensor", "name": "y", "tensor-spec": {"dtype": "int32", "shape": [-1, 1]}},
        ],
    )
    assert named["x"].dtype == numpy.float64 and named["y"].dtype == numpy.int32
    assert model_input(parse(body({"instances": [[1, 2]]}))).dtype == numpy.int64  # no signature


def test_a_ragged_tensor_is_bad_input():
    with pytest.raises(BadInput, match="cannot be read as a tensor"):
        model_input(parse(body({"input_data": [[1, 2], [3]]})), TENSOR_INPUT)


def test_predictions_become_json_as_azure_returns_them():
    assert jsonable(numpy.array([1.5, 2.0])) == [1.5, 2.0]
    assert jsonable(pandas.Series([1, 2])) == [1, 2]
    assert jsonable(pandas.DataFrame({"label": ["a", "b"], "score": [0.25, numpy.nan]})) == [
        {"label": "a", "score": 0.25},
        {"label": "b", "score": None},
    ]
    assert jsonable({"probabilities": numpy.array([[0.5, 0.5]])}) == {"probabilities": [[0.5, 0.5]]}
    assert jsonable(numpy.int64(3)) == 3 and type(jsonable(numpy.int64(3))) is int
    json.dumps(jsonable(pandas.DataFrame({"when": pandas.to_datetime(["2024-01-02"])})))


def test_the_model_folder_is_the_one_holding_mlmodel(tmp_path):
    (tmp_path / "diabetes" / "nested").mkdir(parents=True)
    (tmp_path / "diabetes" / "MLmodel").write_text("flavors: {}\n")
    (tmp_path / "diabetes" / "nested" / "MLmodel").write_text("flavors: {}\n")
    assert find_folder(tmp_path) == tmp_path / "diabetes"
    assert find_folder(tmp_path, "diabetes/nested") == tmp_path / "diabetes" / "nested"
    with pytest.raises(FileNotFoundError, match="no MLmodel file"):
        find_folder(tmp_path, "missing")
    with pytest.raises(FileNotFoundError, match="no MLmodel file"):
        find_folder(tmp_path / "empty")


def test_the_swagger_of_named_columns_is_a_split_dataframe_with_the_models_example():
    example = {"columns": ["age", "visits", "city"], "data": [[30.0, 2, "Oslo"]]}
    outputs = [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]
    params = [{"name": "top_k", "type": "long", "default": 3, "shape": None}]
    service_input, service_output = swagger.mlflow_schemas(COLUMNS, outputs, params, example)
    input_data = service_input["properties"]["input_data"]
    assert input_data["format"] == "pandas.DataFrame:split"
    assert input_data["properties"]["columns"]["items"]["enum"] == ["age", "visits", "city"]
    assert service_input["example"]["input_data"] == {**example, "index": [0]}
    assert service_input["properties"]["params"]["properties"]["top_k"] == {
        "type": "integer",
        "format": "int64",
        "default": 3,
    }
    assert service_output == {
        "type": "array",
        "items": {"type": "number", "format": "double"},
        "format": "numpy.ndarray",
    }


def test_the_swagger_of_tensors_is_nested_arrays_and_named_outputs_are_records():
    service_input, service_output = swagger.mlflow_schemas(
        TENSOR_INPUT,
        [{"type": "string", "name": "label"}, {"type": "double", "name": "score"}],
        None,
    )
    input_data = service_input["properties"]["input_data"]
    assert input_data["items"]["items"] == {"type": "number", "format": "float"}
    assert service_input["example"] == {"input_data": [[0.0]]}
    assert "params" not in service_input["properties"]
    assert service_output["items"]["properties"] == {
        "label": {"type": "string"},
        "score": {"type": "number", "format": "double"},
    }
    assert swagger.mlflow_schemas(COLUMNS, None, None)[1] == {}
