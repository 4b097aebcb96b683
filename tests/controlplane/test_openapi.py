"""The committed openapi.yaml is what the code generates, with no generator warnings."""

from pathlib import Path

from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiYamlRenderer
from drf_spectacular.validation import validate_schema

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.yaml"


def test_openapi_yaml_is_up_to_date():
    GENERATOR_STATS.reset()
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    assert not GENERATOR_STATS, "schema generation emitted warnings or errors"
    generated = OpenApiYamlRenderer().render(schema, renderer_context={}).decode()
    assert COMMITTED.read_text() == generated, (
        "openapi.yaml is stale: run `python manage.py spectacular --file openapi.yaml`"
    )


def test_schema_describes_the_endpoint_operations():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation_ids = {op["operationId"] for item in schema["paths"].values() for op in item.values()}
    for expected in (
        "OnlineEndpoints_CreateOrUpdate",
        "OnlineEndpoints_ListKeys",
        "OnlineDeployments_GetLogs",
        "ModelVersions_CreateOrUpdate",
        "Workspaces_ListBySubscription",
    ):
        assert expected in operation_ids
