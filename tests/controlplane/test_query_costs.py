"""What a list page or an operation poll costs in queries does not grow with the rows: no
query per row (N+1), so a workspace with thousands of resources pages as cheaply as an
empty one (bench/scale.py measures the time)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import WS, put_deployment, put_endpoint, url
from tests.controlplane.test_compute_api import KUBERNETES

pytestmark = pytest.mark.django_db

MODEL = {"properties": {"modelUri": "azureml://datastores/workspaceblobstore/paths/m/"}}
ENVIRONMENT = {"properties": {"image": "python:3.11-slim"}}
CODE = {"properties": {"codeUri": "azureml://datastores/workspaceblobstore/paths/c/"}}
DATA = {
    "properties": {
        "dataType": "uri_folder",
        "dataUri": "azureml://datastores/workspaceblobstore/paths/c/",
    }
}


def add_rows(client, first: int, last: int) -> None:
    """Endpoints ep{i}, deployments of ep0, models/environments/codes/data a{i} (one version each,
    plus more versions of a0), computes c{i}."""
    for i in range(first, last):
        assert put_endpoint(client, f"ep{i}").status_code == 201
        assert put_deployment(client, "ep0", f"dep{i}").status_code == 201
        assets = (
            ("models", MODEL),
            ("environments", ENVIRONMENT),
            ("codes", CODE),
            ("data", DATA),
        )
        for collection, body in assets:
            for name, version in ((f"a{i}", "1"), ("a0", str(i + 2))):
                response = client.put(
                    url(f"/{collection}/{name}/versions/{version}"), body, format="json"
                )
                assert response.status_code in (200, 201), response.content
        assert client.put(url(f"/computes/c{i}"), KUBERNETES, format="json").status_code == 201


LISTS = [
    f"/subscriptions/{WS.split('/')[2]}/providers/Microsoft.MachineLearningServices/workspaces",
    WS.rsplit("/", 1)[0],
    "/onlineEndpoints",
    "/onlineEndpoints/ep0/deployments",
    "/models",
    "/models/a0/versions",
    "/environments",
    "/environments/a0/versions",
    "/codes",
    "/codes/a0/versions",
    "/data",
    "/data/a0/versions",
    "/computes",
    "/datastores",
]


def queries(client, path: str) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url(path))
    assert response.status_code == 200, (path, response.content)
    return len(captured), len(response.json()["value"])


def test_a_list_page_costs_the_same_queries_for_2_rows_as_for_12(client, workspace):
    add_rows(client, 0, 2)
    few = {path: queries(client, path) for path in LISTS}
    add_rows(client, 2, 12)
    many = {path: queries(client, path) for path in LISTS}
    growing = [path for path in LISTS if many[path][1] > few[path][1]]
    assert len(growing) == len(LISTS) - 3  # all but the workspaces and datastores lists
    costlier = {
        path: (few[path][0], many[path][0]) for path in LISTS if many[path][0] != few[path][0]
    }
    assert costlier == {}


def test_an_operation_poll_costs_the_same_however_many_operations_exist(client, workspace):
    first = put_endpoint(client, "ep0")
    with CaptureQueriesContext(connection) as captured:
        assert client.get(first["Azure-AsyncOperation"]).status_code == 200
    alone = len(captured)
    for i in range(1, 30):
        put_endpoint(client, f"ep{i}")
    with CaptureQueriesContext(connection) as captured:
        assert client.get(first["Azure-AsyncOperation"]).status_code == 200
    assert len(captured) == alone
