"""``/swagger.json`` for scripts whose run() has inference-schema decorators, or declares its
schemas itself (the built-in MLflow script, from the model's signature)."""

from __future__ import annotations

try:
    from inference_schema.schema_util import (
        get_input_schema,
        get_output_schema,
        is_schema_decorated,
    )
except ImportError:  # pragma: no cover - environments without inference-schema
    get_input_schema = None


# A run() may carry its input and output schemas as this attribute: (input, output).
DECLARED = "swagger_schemas"
# MLflow's column types (mlflow.types.DataType) as JSON schemas.
MLFLOW_TYPES = {
    "boolean": {"type": "boolean"},
    "integer": {"type": "integer", "format": "int32"},
    "long": {"type": "integer", "format": "int64"},
    "float": {"type": "number", "format": "float"},
    "double": {"type": "number", "format": "double"},
    "string": {"type": "string"},
    "binary": {"type": "string", "format": "binary"},
    "datetime": {"type": "string", "format": "date-time"},
}
EXAMPLES = {"boolean": True, "integer": 0, "number": 0.0, "string": "sample string"}


def build(run_function, service_name: str) -> dict | None:
    """A Swagger 2.0 document for the scoring service, or None without schemas."""
    declared = getattr(run_function, DECLARED, None)
    if declared is not None:
        input_schema, output_schema = declared
    elif get_input_schema is not None and is_schema_decorated(run_function):
        input_schema = get_input_schema(run_function)
        output_schema = get_output_schema(run_function)
    else:
        return None
    error = {"type": "object", "properties": {"message": {"type": "string"}}}
    return {
        "swagger": "2.0",
        "info": {
            "title": service_name,
            "description": f"API specification for the Azure ML service {service_name}",
            "version": "1.0",
        },
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {
            "Bearer": {
                "type": "apiKey",
                "name": "Authorization",
                "in": "header",
                "description": "For example: Bearer abc123",
            }
        },
        "paths": {
            "/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": "Simple health check endpoint.",
                    "responses": {"200": {"description": "Healthy", "schema": {"type": "string"}}},
                }
            },
            "/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": "Run web service's model and get the prediction output",
                    "security": [{"Bearer": []}],
                    "parameters": [
                        {
                            "name": "serviceInputPayload",
                            "in": "body",
                            "description": "The input payload for executing the service.",
                            "schema": {"$ref": "#/definitions/ServiceInput"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The prediction.",
                            "schema": {"$ref": "#/definitions/ServiceOutput"},
                        },
                        "default": {
                            "description": "The service failed to execute due to an error.",
                            "schema": {"$ref": "#/definitions/ErrorResponse"},
                        },
                    },
                }
            },
        },
        "definitions": {
            "ServiceInput": input_schema or {},
            "ServiceOutput": output_schema or {},
            "ErrorResponse": error,
        },
    }


def mlflow_schemas(
    inputs: list[dict], outputs: list[dict] | None, params: list[dict] | None, example=None
) -> tuple[dict, dict]:
    """ServiceInput and ServiceOutput for an MLflow model's signature (its MLmodel file's
    ``inputs``, ``outputs`` and ``params``, JSON-decoded), shaped as Azure's MLflow scoring
    script describes them: ``input_data`` a DataFrame in split orient for named columns, a
    tensor (or named tensors) for tensor specs; ``params`` beside it; predictions as a list.
    ``example`` is the model's saved input example, when it has one in split orient."""
    input_data = _input_data(inputs, example)
    service_input = {
        "type": "object",
        "required": ["input_data"],
        "properties": {"input_data": input_data},
        "example": {"input_data": input_data.pop("example")},
    }
    if params:
        service_input["properties"]["params"] = {
            "type": "object",
            "properties": {
                param["name"]: {**_column(param), "default": param.get("default")}
                for param in params
            },
        }
    return service_input, _output(outputs)


def _input_data(inputs: list[dict], example) -> dict:
    if _is_tensor(inputs):
        schema = _tensors(inputs)
        schema["example"] = _example_of(schema)
        return schema
    names = [spec.get("name") for spec in inputs]
    if not all(names):
        item = _same([_column(spec) for spec in inputs])
        return {"type": "array", "items": item, "example": [_example_of(item)]}
    types = [_column(spec) for spec in inputs]
    if not (isinstance(example, dict) and example.get("columns") == names and example.get("data")):
        example = {"columns": names, "index": [0], "data": [[_example_of(t) for t in types]]}
    return {
        "type": "object",
        "required": ["columns", "data"],
        "properties": {
            "columns": {"type": "array", "items": {"type": "string", "enum": names}},
            "index": {"type": "array", "items": {"type": "integer"}},
            "data": {"type": "array", "items": {"type": "array", "items": _same(types)}},
        },
        "format": "pandas.DataFrame:split",
        "example": {
            "columns": names,
            "index": example.get("index") or list(range(len(example["data"]))),
            "data": example["data"],
        },
    }


def _output(outputs: list[dict] | None) -> dict:
    if not outputs:
        return {}
    if _is_tensor(outputs):
        return _tensors(outputs)
    names = [spec.get("name") for spec in outputs]
    if all(names) and len(names) > 1:
        properties = {spec["name"]: _column(spec) for spec in outputs}
        return {"type": "array", "items": {"type": "object", "properties": properties}}
    return {"type": "array", "items": _same([_column(spec) for spec in outputs])}


def _is_tensor(specs: list[dict]) -> bool:
    return bool(specs) and all(spec.get("type") == "tensor" for spec in specs)


def _tensors(specs: list[dict]) -> dict:
    if len(specs) == 1 and not specs[0].get("name"):
        return _tensor(specs[0])
    return {
        "type": "object",
        "properties": {spec.get("name") or str(n): _tensor(spec) for n, spec in enumerate(specs)},
    }


def _tensor(spec: dict) -> dict:
    tensor = spec.get("tensor-spec") or {}
    schema = _numpy_type(str(tensor.get("dtype", "")))
    for _ in tensor.get("shape") or []:
        schema = {"type": "array", "items": schema}
    return {**schema, "format": "numpy.ndarray"} if schema.get("type") == "array" else schema


def _numpy_type(dtype: str) -> dict:
    if dtype.startswith("float"):
        return {"type": "number", "format": "float" if dtype == "float32" else "double"}
    if dtype.startswith(("int", "uint")):
        return {"type": "integer", "format": "int32" if dtype.endswith("32") else "int64"}
    if dtype == "bool":
        return {"type": "boolean"}
    return {"type": "string"}


def _column(spec: dict) -> dict:
    kind = spec.get("type")
    if kind == "array":
        return {"type": "array", "items": _column(spec.get("items") or {})}
    if kind == "object":
        properties = {p["name"]: _column(p) for p in spec.get("properties") or []}
        return {"type": "object", "properties": properties}
    return dict(MLFLOW_TYPES.get(kind, {}))


def _same(schemas: list[dict]) -> dict:
    """The one schema every item has, or any value when they differ."""
    return schemas[0] if schemas and all(s == schemas[0] for s in schemas) else {}


def _example_of(schema: dict):
    if schema.get("type") == "array":
        return [_example_of(schema.get("items") or {})]
    if schema.get("type") == "object":
        return {name: _example_of(s) for name, s in (schema.get("properties") or {}).items()}
    return EXAMPLES.get(schema.get("type"), 0.0)
