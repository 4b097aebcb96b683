"""``/swagger.json`` for scripts whose run() has inference-schema decorators."""

from __future__ import annotations

try:
    from inference_schema.schema_util import (
        get_input_schema,
        get_output_schema,
        is_schema_decorated,
    )
except ImportError:  # pragma: no cover - environments without inference-schema
    get_input_schema = None


def build(run_function, service_name: str) -> dict | None:
    """A Swagger 2.0 document for the scoring service, or None without schema decorators."""
    if get_input_schema is None or not is_schema_decorated(run_function):
        return None
    input_schema = get_input_schema(run_function)
    output_schema = get_output_schema(run_function)
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
