"""Models, environments, codes and data: containers and immutable versions."""

import pytest

from controlplane.core import references
from controlplane.core.models import Workspace
from tests.conftest import WS, assert_arm_error, url
from tests.controlplane.arm_resource import ArmResourceTests

MODEL = {
    "properties": {
        "modelUri": "azureml://datastores/workspaceblobstore/paths/m/",
        "modelType": "custom_model",
    }
}
DATA = {
    "properties": {
        "dataType": "uri_folder",
        "dataUri": "azureml://datastores/workspaceblobstore/paths/c/",
    }
}
TYPE = "Microsoft.MachineLearningServices/workspaces"


class ContainerTests(ArmResourceTests):
    body = {"properties": {"description": "c"}}
    update = {"properties": {"description": "d"}}
    tags_at = ("properties", "tags")
    bad_name = "-bad"
    bad_name_target = "name"

    @pytest.fixture
    def parent(self, workspace):
        return workspace


class VersionTests(ArmResourceTests):
    names = ("1", "2")
    tags_at = ("properties", "tags")
    bad_name = "a b"
    bad_name_target = "version"

    @pytest.fixture
    def parent(self, workspace):
        return workspace

    @property
    def update(self):
        return {"properties": {**self.body["properties"], "description": "d"}}


class TestModelContainerResource(ContainerTests):
    collection = "/models"
    resource_type = f"{TYPE}/models"


class TestModelVersionResource(VersionTests):
    collection = "/models/sk/versions"
    resource_type = f"{TYPE}/models/versions"
    body = MODEL


class TestEnvironmentContainerResource(ContainerTests):
    collection = "/environments"
    resource_type = f"{TYPE}/environments"


class TestEnvironmentVersionResource(VersionTests):
    collection = "/environments/env/versions"
    resource_type = f"{TYPE}/environments/versions"
    body = {"properties": {"image": "python:3.11-slim"}}


class TestCodeContainerResource(ContainerTests):
    collection = "/codes"
    resource_type = f"{TYPE}/codes"


class TestCodeVersionResource(VersionTests):
    collection = "/codes/score/versions"
    resource_type = f"{TYPE}/codes/versions"
    body = {"properties": {"codeUri": "azureml://datastores/workspaceblobstore/paths/c/"}}


class TestDataContainerResource(ContainerTests):
    collection = "/data"
    resource_type = f"{TYPE}/data"
    body = {"properties": {"dataType": "uri_folder", "description": "c"}}
    update = {"properties": {"dataType": "uri_folder", "description": "d"}}


class TestDataVersionResource(VersionTests):
    collection = "/data/rows/versions"
    resource_type = f"{TYPE}/data/versions"
    body = DATA


def test_a_model_without_flavors_answers_an_empty_map(client, workspace):
    # Azure answers {} and its SDK iterates flavors (Model._from_rest_object).
    created = client.put(url("/models/plain/versions/1"), MODEL, format="json").json()
    assert created["properties"]["flavors"] == {}
    got = client.get(url("/models/plain/versions/1")).json()
    assert got["properties"]["flavors"] == {}


def test_a_version_creates_its_container(client, workspace):
    response = client.put(url("/models/sk/versions/1"), MODEL, format="json")
    assert response.status_code == 201
    assert response.json()["type"] == "Microsoft.MachineLearningServices/workspaces/models/versions"
    container = client.get(url("/models/sk")).json()
    assert container["properties"]["latestVersion"] == "1"
    assert container["properties"]["nextVersion"] == "2"


def test_versions_are_immutable_but_metadata_changes(client, workspace):
    client.put(url("/models/sk/versions/1"), MODEL, format="json")
    same = client.put(url("/models/sk/versions/1"), MODEL, format="json")
    assert same.status_code == 200
    changed = {
        "properties": {
            **MODEL["properties"],
            "modelUri": "azureml://datastores/workspaceblobstore/paths/other/",
        }
    }
    error = assert_arm_error(
        client.put(url("/models/sk/versions/1"), changed, format="json"), 409, "Conflict", "version"
    )
    assert "sk:1" in error["message"]
    tagged = {"properties": {**MODEL["properties"], "tags": {"stage": "prod"}, "description": "d"}}
    response = client.put(url("/models/sk/versions/1"), tagged, format="json")
    assert response.status_code == 200
    assert response.json()["properties"]["tags"] == {"stage": "prod"}
    got = client.get(url("/models/sk/versions/1")).json()
    assert got["properties"]["modelUri"] == MODEL["properties"]["modelUri"]


def test_latest_version_compares_numbers_as_numbers(client, workspace):
    for version in ("2", "10", "beta", "9"):
        client.put(url(f"/models/sk/versions/{version}"), MODEL, format="json")
    for version in ("alpha", "beta", "Gamma"):
        client.put(url(f"/models/named/versions/{version}"), MODEL, format="json")
    container = client.get(url("/models/sk")).json()["properties"]
    assert container["latestVersion"] == "10" and container["nextVersion"] == "11"
    listed = {m["name"]: m["properties"] for m in client.get(url("/models")).json()["value"]}
    assert (listed["sk"]["latestVersion"], listed["sk"]["nextVersion"]) == ("10", "11")
    # Without numbers the highest name wins, compared by code point as Python does.
    assert (listed["named"]["latestVersion"], listed["named"]["nextVersion"]) == ("beta", "1")


def test_list_view_type_filters_archived(client, workspace):
    client.put(url("/models/live/versions/1"), MODEL, format="json")
    client.put(url("/models/old"), {"properties": {"isArchived": True}}, format="json")
    active = [m["name"] for m in client.get(url("/models")).json()["value"]]
    archived = [
        m["name"] for m in client.get(url("/models", "listViewType=ArchivedOnly")).json()["value"]
    ]
    everything = [m["name"] for m in client.get(url("/models", "listViewType=All")).json()["value"]]
    assert active == ["live"] and archived == ["old"] and everything == ["live", "old"]
    assert_arm_error(
        client.get(url("/models", "listViewType=Some")), 400, "ValidationError", "listViewType"
    )


def test_environment_needs_an_image_or_build(client, workspace):
    response = client.put(url("/environments/env/versions/1"), {"properties": {}}, format="json")
    assert_arm_error(response, 400, "ValidationError", "properties.image")
    body = {"properties": {"image": "python:3.11-slim", "condaFile": "dependencies: [python=3.11]"}}
    response = client.put(url("/environments/env/versions/1"), body, format="json")
    assert response.status_code == 201
    assert response.json()["properties"]["osType"] == "Linux"


@pytest.mark.parametrize(
    "path, target", [("/models/-bad/versions/1", "name"), ("/models/ok/versions/a b", "version")]
)
def test_asset_names_are_checked(client, workspace, path, target):
    assert_arm_error(client.put(url(path), MODEL, format="json"), 400, "ValidationError", target)


@pytest.mark.parametrize(
    "uri",
    [
        "azureml://datastores/workspaceblobstore/paths/missing/",
        "azureml://datastores/otherstore/paths/c/",
        "https://elsewhere.blob.core.windows.net/data/c/",
        "s3://bucket/c/",
    ],
)
def test_data_must_be_in_the_workspace_storage(client, workspace, uri):
    body = {"properties": {**DATA["properties"], "dataUri": uri}}
    response = client.put(url("/data/rows/versions/1"), body, format="json")
    assert_arm_error(response, 400, "ValidationError", "properties.dataUri")
    assert client.get(url("/data/rows/versions/1")).status_code == 404


@pytest.mark.parametrize("missing", ["dataType", "dataUri"])
def test_a_data_version_needs_its_type_and_uri(client, workspace, missing):
    body = {"properties": {k: v for k, v in DATA["properties"].items() if k != missing}}
    response = client.put(url("/data/rows/versions/1"), body, format="json")
    assert_arm_error(response, 400, "ValidationError", f"properties.{missing}")


def test_a_data_version_creates_its_container_with_its_type(client, workspace):
    body = {"properties": {"dataType": "URI_FILE", "dataUri": DATA["properties"]["dataUri"]}}
    body["properties"]["dataUri"] += "score.py"
    created = client.put(url("/data/script/versions/1"), body, format="json")
    assert created.status_code == 201, created.content
    answer = created.json()["properties"]
    assert answer["dataType"] == "uri_file" and answer["dataUri"].endswith("/c/score.py")
    assert answer["tags"] == {} and answer["properties"] == {}
    assert answer["isAnonymous"] is False and "referencedUris" not in answer
    container = client.get(url("/data/script")).json()["properties"]
    assert container["dataType"] == "uri_file"
    assert (container["latestVersion"], container["nextVersion"]) == ("1", "2")


def test_every_version_of_a_data_asset_has_its_container_type(client, workspace):
    assert client.put(url("/data/rows/versions/1"), DATA, format="json").status_code == 201
    mltable = {"properties": {**DATA["properties"], "dataType": "mltable"}}
    response = client.put(url("/data/rows/versions/2"), mltable, format="json")
    error = assert_arm_error(response, 400, "ValidationError", "properties.dataType")
    assert "uri_folder" in error["message"]
    response = client.put(url("/data/rows"), {"properties": {"dataType": "mltable"}}, format="json")
    assert_arm_error(response, 400, "ValidationError", "properties.dataType")
    described = {"properties": {"dataType": "Uri_Folder", "description": "d"}}
    assert client.put(url("/data/rows"), described, format="json").status_code == 200
    response = client.put(
        url("/data/tables"), {"properties": {"dataType": "mltable"}}, format="json"
    )
    assert response.status_code == 201
    assert client.put(url("/data/tables/versions/1"), mltable, format="json").status_code == 201


def test_only_mltable_versions_keep_referenced_uris(client, workspace):
    uris = ["azureml://datastores/workspaceblobstore/paths/m/model.pkl"]
    mltable = {"properties": {**DATA["properties"], "dataType": "mltable", "referencedUris": uris}}
    answer = client.put(url("/data/table/versions/1"), mltable, format="json").json()
    assert answer["properties"]["referencedUris"] == uris
    folder = {"properties": {**DATA["properties"], "referencedUris": uris}}
    answer = client.put(url("/data/folder/versions/1"), folder, format="json").json()
    assert "referencedUris" not in answer["properties"]


def test_data_versions_filter_by_tags_as_azure_names_the_parameter(client, workspace):
    tagged = {"properties": {**DATA["properties"], "tags": {"split": "train"}}}
    client.put(url("/data/rows/versions/1"), tagged, format="json")
    client.put(url("/data/rows/versions/2"), DATA, format="json")
    listed = client.get(url("/data/rows/versions", "$tags=split=train")).json()["value"]
    assert [version["name"] for version in listed] == ["1"]


@pytest.mark.parametrize(
    "reference, version",
    [
        (f"{WS}/data/rows/versions/1", "1"),
        (f"{WS.lower()}/DATA/Rows/versions/1", "1"),
        ("azureml:rows:1", "1"),
        ("azureml:rows@latest", "2"),
        ("azureml:rows", "2"),
        ("azureml://locations/local/workspaces/ws1/data/rows/versions/1", "1"),
        ("azureml://workspaces/ws1/data/rows/versions/2", "2"),
    ],
)
def test_data_references_resolve_to_the_version(client, workspace, reference, version):
    for name in ("1", "2"):
        client.put(url(f"/data/rows/versions/{name}"), DATA, format="json")
    found = references.resolve(Workspace.objects.get(), reference, "data")
    assert (found.container.name, found.name) == ("rows", version)
    assert (found.data_type, found.data_uri) == ("uri_folder", DATA["properties"]["dataUri"])


@pytest.mark.parametrize(
    "reference, message",
    [
        (f"{WS}/codes/test-score/versions/1", "refers to codes, not data"),
        ("azureml://workspaces/other/data/rows/versions/1", "another workspace"),
        ("azureml:nothing:1", "data 'nothing' does not exist"),
        ("azureml:rows:9", "data 'rows' has no version '9'"),
    ],
)
def test_a_data_reference_to_nothing_is_refused(client, workspace, reference, message):
    client.put(url("/data/rows/versions/1"), DATA, format="json")
    with pytest.raises(ValueError, match=message):
        references.resolve(Workspace.objects.get(), reference, "data")
