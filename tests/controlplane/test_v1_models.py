"""SDK v1's artifact uploads and model management, in the shapes azureml-core reads."""

from urllib.parse import urlsplit

import pytest

from controlplane.blobstore import storage
from controlplane.core.models import ModelVersion, Workspace
from controlplane.v1.models import Asset
from tests.conftest import WS, url

ARTIFACTS = f"/artifact/v2.0{WS}/artifacts/batch/metadata"
MMS = f"/modelmanagement/v1.0{WS}"


@pytest.fixture
def ws(client):
    response = client.put(url(""), {"location": "local"}, format="json")
    assert response.status_code == 201, response.content
    return Workspace.objects.get()


def upload(client, ws, container="c1", paths=("model/a.pkl", "model/sub/b.txt")):
    """Ask for SAS URLs as the SDK does, then write the blobs as its uploader would."""
    body = {"paths": [{"path": p} for p in paths]}
    response = client.post(f"{ARTIFACTS}/LocalUpload/{container}", body, format="json")
    assert response.status_code == 200, response.content
    account = storage.account_for(ws)
    for path in paths:
        name = f"artifacts/LocalUpload/{container}/{path}"
        storage.write_blob(account, account.default_container, name, [path.encode()])
    return response.json()


def register(client, ws, name="m1", prefix="LocalUpload/c1/model"):
    asset = client.post(
        f"{MMS}/assets", {"name": name, "artifacts": [{"prefix": prefix}]}, format="json"
    )
    assert asset.status_code == 200, asset.content
    body = {
        "name": name,
        "url": f"aml://asset/{asset.json()['id']}",
        "mimeType": "application/json",
        "unpack": False,
        "kvTags": {"team": "a"},
        "datasets": [],
    }
    return client.post(f"{MMS}/models", body, format="json")


def test_an_artifact_batch_answers_a_host_style_sas_url_per_path(client, ws):
    answer = upload(client, ws)
    assert answer["errors"] == {}
    artifact = answer["artifacts"]["model/a.pkl"]
    assert artifact == {
        "artifactId": "LocalUpload/c1/model/a.pkl",
        "origin": "LocalUpload",
        "container": "c1",
        "path": "model/a.pkl",
    }
    uri = urlsplit(answer["artifactContentInformation"]["model/a.pkl"]["contentUri"])
    account = storage.account_for(ws)
    # SDK v1 splits the host into account, "blob" and the suffix it connects to.
    assert uri.hostname.split(".", 2)[:2] == [account.name, "blob"]
    assert uri.path == f"/{account.default_container}/artifacts/LocalUpload/c1/model/a.pkl"
    assert "sp=rw" in uri.query


def test_a_batch_labelled_json_patch_is_read_as_json(client, ws):
    # SDK v1 labels its artifact batch application/json-patch+json.
    body = '{"paths": [{"path": "model/a.pkl"}]}'
    response = client.post(
        f"{ARTIFACTS}/LocalUpload/c1", body, content_type="application/json-patch+json"
    )
    assert response.status_code == 200, response.content
    assert list(response.json()["artifacts"]) == ["model/a.pkl"]


def test_an_artifact_already_written_is_an_error_for_its_path(client, ws):
    upload(client, ws)
    body = {"paths": [{"path": "model/a.pkl"}, {"path": "model/new.txt"}]}
    answer = client.post(f"{ARTIFACTS}/LocalUpload/c1", body, format="json").json()
    assert answer["errors"]["model/a.pkl"]["error"]["code"] == "AlreadyExists"
    assert list(answer["artifacts"]) == ["model/new.txt"]


@pytest.mark.parametrize("path", ["../x", "/abs", "a//b"])
def test_an_unsafe_artifact_path_is_refused(client, ws, path):
    body = {"paths": [{"path": path}]}
    response = client.post(f"{ARTIFACTS}/LocalUpload/c1", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "BadRequest"


def test_registering_makes_a_model_version_both_apis_show(client, ws):
    upload(client, ws)
    response = register(client, ws)
    assert response.status_code == 200, response.content
    model = response.json()
    assert (model["id"], model["name"], model["version"]) == ("m1:1", "m1", 1)
    assert model["url"].startswith("aml://asset/")
    assert (model["mimeType"], model["unpack"], model["kvTags"]) == (
        "application/json",
        False,
        {"team": "a"},
    )
    assert model["createdTime"]
    v2 = client.get(url("/models/m1/versions/1")).json()["properties"]
    assert v2["modelUri"] == (
        "azureml://datastores/workspaceblobstore/paths/artifacts/LocalUpload/c1/model/"
    )
    assert register(client, ws).json()["id"] == "m1:2"


def test_models_are_found_by_id_and_listed_newest_version_first(client, ws):
    upload(client, ws)
    register(client, ws)
    register(client, ws)
    register(client, ws, name="m2")
    assert client.get(f"{MMS}/models/m1:1").json()["version"] == 1
    listed = client.get(f"{MMS}/models", {"name": "m1", "count": 1}).json()
    assert [m["id"] for m in listed["value"]] == ["m1:2"]
    assert "%24skipToken=1" in listed["nextLink"]
    everything = client.get(f"{MMS}/models").json()
    assert [m["id"] for m in everything["value"]] == ["m1:2", "m1:1", "m2:1"]
    latest = client.get(f"{MMS}/models", {"latestVersionOnly": "true"}).json()
    assert [m["id"] for m in latest["value"]] == ["m1:2", "m2:1"]
    tagged = client.get(f"{MMS}/models", {"tags": "team=b"}).json()
    assert tagged["value"] == []


def test_a_model_registered_through_v2_is_seen_by_v1(client, ws):
    account = storage.account_for(ws)
    storage.write_blob(account, account.default_container, "m/model.pkl", [b"x"])
    body = {"properties": {"modelUri": "azureml://datastores/workspaceblobstore/paths/m/"}}
    assert client.put(url("/models/v2m/versions/3"), body, format="json").status_code == 201
    model = client.get(f"{MMS}/models/v2m:3").json()
    assert (model["version"], model["url"]) == (3, body["properties"]["modelUri"])


@pytest.mark.parametrize("model_id", ["nope:1", "nope", "m1:x"])
def test_an_unknown_model_is_a_404_model_error_response(client, ws, model_id):
    response = client.get(f"{MMS}/models/{model_id}")
    assert response.status_code == 404
    error = response.json()
    assert (error["code"], error["statusCode"]) == ("ModelNotFound", 404)
    assert error["message"] and "RequestId" in error["correlation"]


def test_registering_an_unknown_asset_is_refused_and_creates_nothing(client, ws):
    for url_ in ("aml://asset/0123456789abcdef0123456789abcdef", "aml://asset/x", "https://x"):
        body = {"name": "m1", "url": url_, "mimeType": "application/json"}
        response = client.post(f"{MMS}/models", body, format="json")
        assert response.status_code == 400, response.content
        assert response.json()["statusCode"] == 400
    assert not ModelVersion.objects.exists()


def test_an_asset_over_nothing_uploaded_is_refused(client, ws):
    for prefix in ("LocalUpload/none/model", "nope", "LocalUpload/../x"):
        body = {"name": "a", "artifacts": [{"prefix": prefix}]}
        response = client.post(f"{MMS}/assets", body, format="json")
        assert response.status_code == 400, response.content
        assert response.json()["code"] == "BadRequest"
    assert not Asset.objects.exists()


def test_another_workspaces_asset_is_unknown(client, ws):
    upload(client, ws)
    asset = client.post(
        f"{MMS}/assets",
        {"name": "a", "artifacts": [{"prefix": "LocalUpload/c1/model"}]},
        format="json",
    ).json()
    other = WS.replace("/ws1", "/ws2")
    assert client.put(url(other), {"location": "local"}, format="json").status_code == 201
    body = {"name": "m1", "url": f"aml://asset/{asset['id']}", "mimeType": "application/json"}
    response = client.post(f"/modelmanagement/v1.0{other}/models", body, format="json")
    assert response.status_code == 400
    assert not ModelVersion.objects.exists()


def test_the_v1_services_need_a_token(db, ws):
    from rest_framework.test import APIClient

    response = APIClient().get(f"{MMS}/models")
    assert response.status_code == 401
    assert response.json()["statusCode"] == 401
