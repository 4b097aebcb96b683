"""Bad input anywhere in a request is a 4xx ARM error naming where it is, never a 500, and
changes nothing."""

import json

import pytest
from django.core.exceptions import FieldDoesNotExist
from django.db import models
from rest_framework import serializers

from controlplane.core.models import (
    Compute,
    OnlineDeployment,
    OnlineEndpoint,
    Workspace,
)
from controlplane.core.serializers.compute import ComputeResourceSerializer
from controlplane.core.serializers.deployment import OnlineDeploymentSerializer
from controlplane.core.serializers.endpoint import OnlineEndpointSerializer
from controlplane.core.serializers.workspace import WorkspaceSerializer
from controlplane.core.services import asset as asset_service
from tests.conftest import assert_arm_error, put_deployment, run_operations, url

MODEL = {"properties": {"modelUri": "azureml://datastores/workspaceblobstore/paths/m/"}}
DEPLOYMENT = "/onlineEndpoints/ep1/deployments/blue"


def put_json(client, path: str, text: str):
    return client.put(url(path), text, content_type="application/json")


@pytest.mark.parametrize(
    "properties, target",
    [
        ({"properties": {"k\u0000": "v"}}, "properties.properties"),
        ({"flavors": {"python": {"loader\u0000": "x"}}}, "properties.flavors.python"),
        ({"flavors": {"python": {"loader": "x\u0000"}}}, "properties.flavors.python.loader"),
        ({"flavors": {"python": {"loader": ["\ud800"]}}}, "properties.flavors.python.loader[0]"),
        ({"unknownField": {"k": "\udfff"}}, "properties.unknownField.k"),
    ],
    ids=["key", "nested-key", "nested-value", "list-item", "ignored-field"],
)
def test_text_postgres_cannot_store_is_refused_wherever_it_is(
    client, workspace, properties, target
):
    body = json.dumps({"properties": {**MODEL["properties"], **properties}})
    assert_arm_error(put_json(client, "/models/m/versions/1", body), 400, "ValidationError", target)
    assert_arm_error(client.get(url("/models/m")), 404, "ResourceNotFound")


def test_a_nul_in_a_top_level_key_is_refused(client, workspace):
    response = put_json(client, "", json.dumps({"location": "local", "x\u0000": 1}))
    error = assert_arm_error(response, 400, "ValidationError", None)
    assert "A key" in error["message"]


@pytest.mark.parametrize(
    "path, query, target",
    [
        ("/models/a%00b", "", "name"),
        ("/onlineEndpoints/e%00p", "", "endpointName"),
        ("/models/sk/versions", "tags=a%00", "tags"),
        ("/models/sk/versions", "version=1%00", "version"),
        ("/models/sk/versions", "hash=%00", "hash"),
        ("/onlineEndpoints", "tags=a%00=b", "tags"),
        ("/models", "x%00=1", None),
    ],
)
def test_a_nul_in_the_url_is_refused(client, workspace, path, query, target):
    assert_arm_error(client.get(url(path, query)), 400, "ValidationError", target)


def nested(depth: int) -> str:
    """A workspace body whose tags hold arrays ``depth`` containers deep, the body counted."""
    inner = depth - 2
    return '{"location": "local", "tags": {"a": ' + "[" * inner + "]" * inner + "}}"


@pytest.mark.parametrize("depth", [65, 2000, 100_000])
def test_deep_nesting_is_refused(client, workspace, depth):
    before = client.get(url(""))
    response = put_json(client, "", nested(depth))
    error = assert_arm_error(response, 400, "InvalidRequestContent")
    assert "64" in error["message"]
    after = client.get(url(""))
    assert after.json() == before.json() and after["ETag"] == before["ETag"]


def test_nesting_up_to_the_limit_is_read(client, workspace):
    # 64 levels parse; the tags' value is then refused as a type, not as nesting.
    response = put_json(client, "", nested(64))
    assert_arm_error(response, 400, "ValidationError", "tags.a")


@pytest.mark.parametrize("size", [4 * 1024 * 1024 + 1, 50 * 1024 * 1024])
def test_a_body_over_4_mb_is_an_arm_413(client, workspace, size):
    before = client.get(url(""))
    head = '{"location": "local", "tags": {"a": "'
    body = head + "x" * (size - len(head) - 3) + '"}}'
    assert len(body) == size
    response = put_json(client, "", body)
    assert response["Content-Type"] == "application/json"
    error = assert_arm_error(response, 413, "RequestContentTooLarge")
    assert str(4 * 1024 * 1024) in error["message"]
    after = client.get(url(""))
    assert after.json() == before.json() and after["ETag"] == before["ETag"]


def test_too_many_query_parameters_is_an_arm_400(client, workspace):
    query = "&".join(f"p{index}=1" for index in range(1001))
    response = client.get(url("/models", query))
    assert response["Content-Type"] == "application/json"
    assert_arm_error(response, 400, "BadRequest")


@pytest.mark.parametrize(
    "query, target",
    [
        ("$top=" + "9" * 3000, "$top"),
        ("$top=2147483648", "$top"),
        ("$top=99999999999999999999999", "$top"),
        ("$top=0", "$top"),
        ("$top=%2B5", "$top"),
        ("$top=%205", "$top"),
        ("$top=1_0", "$top"),
        ("$top=%D9%A3", "$top"),
        ("count=abc", "count"),
        ("$skip=-1", "$skip"),
        ("$skip=99999999999999999999999", "$skip"),
        ("$skip=1e3", "$skip"),
        ("$skipToken=abc", "$skipToken"),
    ],
    ids=lambda value: value[:24],
)
def test_bad_paging_parameters_are_arm_400s(client, workspace, query, target):
    client.put(url("/models/sk/versions/1"), MODEL, format="json")
    for path in ("/models", "/models/sk/versions", "/onlineEndpoints"):
        response = client.get(url(path, query))
        assert_arm_error(response, 400, "ValidationError", target)


def test_skip_token_continues_a_list_like_skip(client, workspace):
    for name in ("a", "b", "c"):
        client.put(url(f"/models/{name}"), {"properties": {}}, format="json")
    page = client.get(url("/models", "$top=2&$skipToken=1")).json()
    assert [row["name"] for row in page["value"]] == ["b", "c"]
    page = client.get(url("/models", "$top=1&$skipToken=1")).json()
    assert "$skipToken" not in page["nextLink"] and "$skip=2" in page["nextLink"]


@pytest.fixture
def deployed(client, endpoint):
    response = put_deployment(client)
    assert response.status_code == 201, response.content
    run_operations()
    return response.json()


def assert_deployment_refused(client, properties: dict, target: str):
    """A PUT of the deployment with ``properties`` is refused naming ``target``, and the
    deployment reads back as it did (no operation started)."""
    before = client.get(url(DEPLOYMENT))
    response = put_deployment(client, **properties)
    assert_arm_error(response, 400, "ValidationError", target)
    after = client.get(url(DEPLOYMENT))
    assert after.json() == before.json() and after["ETag"] == before["ETag"]


REQUIREMENTS = "properties.containerResourceRequirements"


@pytest.mark.parametrize(
    "resources, target",
    [
        ({"containerResourceLimits": {"memory": "lots"}}, "containerResourceLimits.memory"),
        ({"containerResourceLimits": {"memory": "512K"}}, "containerResourceLimits.memory"),
        ({"containerResourceLimits": {"memory": "-1Gi"}}, "containerResourceLimits.memory"),
        ({"containerResourceLimits": {"memory": "1e999"}}, "containerResourceLimits.memory"),
        ({"containerResourceLimits": {"cpu": "1.5 cores"}}, "containerResourceLimits.cpu"),
        ({"containerResourceRequests": {"cpu": "m"}}, "containerResourceRequests.cpu"),
        ({"containerResourceLimits": {"gpu": "500m"}}, "containerResourceLimits.gpu"),
        (
            {"containerResourceRequests": {"cpu": "2"}, "containerResourceLimits": {"cpu": "1"}},
            "containerResourceRequests.cpu",
        ),
        (
            {
                "containerResourceRequests": {"memory": "2Gi"},
                "containerResourceLimits": {"memory": "1G"},
            },
            "containerResourceRequests.memory",
        ),
        (
            {"containerResourceRequests": {"gpu": "1"}, "containerResourceLimits": {"gpu": "2"}},
            "containerResourceRequests.gpu",
        ),
    ],
)
def test_resource_quantities_are_checked_at_put(client, deployed, resources, target):
    properties = {"containerResourceRequirements": resources}
    assert_deployment_refused(client, properties, f"{REQUIREMENTS}.{target}")


def test_kubernetes_quantities_are_accepted(client, deployed):
    requirements = {
        "containerResourceRequests": {"cpu": "500m", "memory": ".5Gi", "gpu": "1"},
        "containerResourceLimits": {"cpu": "1.5", "memory": "1e9", "gpu": "1"},
    }
    response = put_deployment(client, containerResourceRequirements=requirements)
    assert response.status_code == 200, response.content
    assert response.json()["properties"]["containerResourceRequirements"] == requirements


@pytest.mark.parametrize(
    "properties, target",
    [
        ({"livenessProbe": {"period": "P99999999999999D"}}, "livenessProbe.period"),
        ({"readinessProbe": {"initialDelay": "PT10"}}, "readinessProbe.initialDelay"),
        ({"readinessProbe": {"timeout": "PT0S"}}, "readinessProbe.timeout"),
        ({"requestSettings": {"maxQueueWait": "P1000000D"}}, "requestSettings.maxQueueWait"),
    ],
)
def test_probe_settings_and_durations_are_checked_at_put(client, deployed, properties, target):
    assert_deployment_refused(client, properties, f"properties.{target}")


def test_patched_tags_are_held_to_arm_limits(client, deployed):
    for path in ("", "/onlineEndpoints/ep1", DEPLOYMENT):
        before = client.get(url(path))
        response = client.patch(url(path), {"tags": {"a/b": "x"}}, format="json")
        assert_arm_error(response, 400, "InvalidTagNameCharacters", "tags")
        response = client.patch(url(path), {"tags": {"a": "v" * 257}}, format="json")
        assert_arm_error(response, 400, "InvalidTagValueLength", "tags")
        after = client.get(url(path))
        assert after.json() == before.json() and after["ETag"] == before["ETag"]


@pytest.mark.parametrize(
    "value", [0, 1, "true", "false", "yes", None, [], {}], ids=lambda value: repr(value)
)
def test_a_boolean_is_true_or_false(client, workspace, value):
    body = {"properties": {"isArchived": value}}
    response = client.put(url("/models/m"), body, format="json")
    assert_arm_error(response, 400, "ValidationError", "properties.isArchived")
    assert_arm_error(client.get(url("/models/m")), 404, "ResourceNotFound")


def test_a_boolean_change_is_refused_without_changing_anything(client, workspace):
    assert client.put(url("/models/m"), {"properties": {}}, format="json").status_code == 201
    before = client.get(url("/models/m"))
    response = client.put(url("/models/m"), {"properties": {"isArchived": 1}}, format="json")
    assert_arm_error(response, 400, "ValidationError", "properties.isArchived")
    after = client.get(url("/models/m"))
    assert after.json() == before.json() and after["ETag"] == before["ETag"]
    assert after.json()["properties"]["isArchived"] is False


@pytest.mark.parametrize(
    "properties, target",
    [
        ({"livenessProbe": {"failureThreshold": "5"}}, "livenessProbe.failureThreshold"),
        ({"livenessProbe": {"failureThreshold": 5.0}}, "livenessProbe.failureThreshold"),
        ({"livenessProbe": {"failureThreshold": True}}, "livenessProbe.failureThreshold"),
        ({"livenessProbe": {"failureThreshold": 2**31}}, "livenessProbe.failureThreshold"),
        (
            {"requestSettings": {"maxConcurrentRequestsPerInstance": "2"}},
            "requestSettings.maxConcurrentRequestsPerInstance",
        ),
        ({"appInsightsEnabled": "false"}, "appInsightsEnabled"),
    ],
)
def test_integers_and_booleans_are_strict_in_deployments(client, deployed, properties, target):
    assert_deployment_refused(client, properties, f"properties.{target}")


def test_a_string_count_is_refused(client, deployed):
    before = client.get(url(DEPLOYMENT))
    body = {**before.json(), "sku": {"name": "Default", "capacity": "5"}}
    response = client.put(url(DEPLOYMENT), body, format="json")
    assert_arm_error(response, 400, "ValidationError", "sku.capacity")
    response = client.patch(url(DEPLOYMENT), {"sku": {"capacity": "5"}}, format="json")
    assert_arm_error(response, 400, "ValidationError", "sku.capacity")
    after = client.get(url(DEPLOYMENT))
    assert after.json() == before.json() and after["ETag"] == before["ETag"]


def test_a_traffic_share_is_an_integer(client, deployed):
    before = client.get(url("/onlineEndpoints/ep1"))
    body = {"location": "local", "properties": {"authMode": "Key", "traffic": {"blue": "100"}}}
    response = client.put(url("/onlineEndpoints/ep1"), body, format="json")
    assert_arm_error(response, 400, "ValidationError", "properties.traffic.blue")
    after = client.get(url("/onlineEndpoints/ep1"))
    assert after.json() == before.json() and after["ETag"] == before["ETag"]


def stored_strings(serializer, model, path=""):
    """(field path, serializer field, column) for each string a PUT of ``serializer`` writes
    to a length-limited column of ``model``."""
    for name, field in serializer.fields.items():
        if field.read_only:
            continue
        where = f"{path}.{name}" if path else name
        if isinstance(field, serializers.Serializer) and field.source == "*":
            yield from stored_strings(field, model, where)
        elif isinstance(field, serializers.CharField) and len(field.source_attrs) == 1:
            try:
                column = model._meta.get_field(field.source)
            except FieldDoesNotExist:
                continue
            if isinstance(column, models.CharField):
                yield where, field, column


def row_serializers():
    kinds = asset_service.KINDS.values()
    yield from [
        (WorkspaceSerializer, Workspace),
        (ComputeResourceSerializer, Compute),
        (OnlineEndpointSerializer, OnlineEndpoint),
        (OnlineDeploymentSerializer, OnlineDeployment),
        *[(kind.container_serializer, kind.container_model) for kind in kinds],
        *[(kind.version_serializer, kind.version_model) for kind in kinds],
    ]


@pytest.mark.parametrize(
    "serializer_class, model", list(row_serializers()), ids=lambda each: each.__name__
)
def test_strings_are_held_to_their_columns_length(serializer_class, model):
    """A string longer than its column would be a DataError (a 500) when the row is saved."""
    for where, field, column in stored_strings(serializer_class(), model):
        assert field.max_length is not None and field.max_length <= column.max_length, (
            f"{where} may be longer than {model.__name__}.{column.name} "
            f"({column.max_length} characters)"
        )


def test_an_overlong_string_is_a_400(client, workspace):
    body = {"properties": {**MODEL["properties"], "modelType": "t" * 65}}
    response = client.put(url("/models/m/versions/1"), body, format="json")
    assert_arm_error(response, 400, "ValidationError", "properties.modelType")


def test_a_patched_sku_on_a_resource_without_one_needs_its_name(client, workspace):
    before = client.get(url(""))
    assert before.json().get("sku") is None
    response = client.patch(url(""), {"sku": {"capacity": 0, "size": "0"}}, format="json")
    assert_arm_error(response, 400, "ValidationError", "sku.name")
    after = client.get(url(""))
    assert after.json() == before.json() and after["ETag"] == before["ETag"]
    response = client.patch(url(""), {"sku": {"name": "Basic"}}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["sku"] == {"name": "Basic"}
