"""SDK v1's artifact uploads and model management, in the shapes azureml-core reads."""

from urllib.parse import parse_qs, urlsplit

import pytest

from controlplane.blobstore import storage
from controlplane.core.models import ModelVersion, Workspace
from controlplane.v1 import services
from controlplane.v1.models import Asset
from tests.conftest import WS, url

ARTIFACTS = f"/artifact/v2.0{WS}/artifacts/batch/metadata"
CONTENT = f"/artifact/v2.0{WS}/artifacts/contentinfo"
PREFIX = f"/artifact/v2.0{WS}/artifacts/prefix/contentinfo"
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
    version = ModelVersion.objects.get()
    # The asset v1 names it by is the version itself.
    assert (model["version"], model["url"]) == (3, f"aml://asset/{version.id.hex}")


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


# -- reading models back (Model.download)


def sas_fields(content_uri: str) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(content_uri).query).items()}


def test_a_registered_models_asset_lists_its_files_with_read_sas_urls(client, ws):
    upload(client, ws)
    upload(client, ws, paths=("model2/other.txt",))  # a sibling sharing the prefix's text
    model = register(client, ws).json()
    asset = client.get(f"{MMS}/assets/{model['url'].removeprefix('aml://asset/')}")
    assert asset.status_code == 200, asset.content
    (artifact,) = asset.json()["artifacts"]
    assert artifact == {"id": None, "prefix": "LocalUpload/c1/model"}
    listed = client.get(f"{PREFIX}/LocalUpload/c1/model").json()
    assert listed["continuationToken"] is None
    assert [a["path"] for a in listed["value"]] == ["model/a.pkl", "model/sub/b.txt"]
    account = storage.account_for(ws)
    first = listed["value"][0]
    assert (first["origin"], first["container"]) == ("LocalUpload", "c1")
    uri = urlsplit(first["contentUri"])
    assert uri.hostname.split(".", 2)[:2] == [account.name, "blob"]
    assert uri.path == f"/{account.default_container}/artifacts/LocalUpload/c1/model/a.pkl"
    assert (sas_fields(first["contentUri"])["sp"], sas_fields(first["contentUri"])["sr"]) == (
        "r",
        "b",
    )
    one = client.get(f"{CONTENT}/LocalUpload/c1/model/sub/b.txt").json()
    assert (one["path"], urlsplit(one["contentUri"]).path) == (
        "model/sub/b.txt",
        f"/{account.default_container}/artifacts/LocalUpload/c1/model/sub/b.txt",
    )


def test_a_prefix_listing_pages_with_a_continuation_token(client, ws, monkeypatch):
    upload(client, ws, paths=("model/a", "model/b", "model/c"))
    monkeypatch.setattr(services, "ARTIFACT_PAGE", 2)
    first = client.get(f"{PREFIX}/LocalUpload/c1/model").json()
    assert [a["path"] for a in first["value"]] == ["model/a", "model/b"]
    assert first["continuationToken"] == "model/b"
    rest = client.get(
        f"{PREFIX}/LocalUpload/c1/model", {"continuationToken": first["continuationToken"]}
    ).json()
    assert ([a["path"] for a in rest["value"]], rest["continuationToken"]) == (["model/c"], None)


def test_nothing_uploaded_lists_nothing_and_reads_are_404(client, ws):
    upload(client, ws)
    assert client.get(f"{PREFIX}/LocalUpload/c1/nope").json()["value"] == []
    for missing in ("LocalUpload/c1/model/nope.txt", "LocalUpload/c1/model"):
        response = client.get(f"{CONTENT}/{missing}")
        assert response.status_code == 404, response.content
        assert response.json()["error"]["code"] == "NotFound"
    response = client.get(f"{MMS}/assets/0123456789abcdef0123456789abcdef")
    assert (response.status_code, response.json()["code"]) == (404, "AssetNotFound")


def v2_model(client, ws, path="m/", name="v2m"):
    account = storage.account_for(ws)
    for blob in ("m/model.pkl", "m/sub/w.txt", "m-sibling/x", "solo.pkl"):
        storage.write_blob(account, account.default_container, blob, [blob.encode()])
    body = {"properties": {"modelUri": f"azureml://datastores/workspaceblobstore/paths/{path}"}}
    response = client.put(url(f"/models/{name}/versions/1"), body, format="json")
    assert response.status_code == 201, response.content
    return client.get(f"{MMS}/models/{name}:1").json()


def test_a_v2_models_files_are_read_through_its_v1_asset(client, ws):
    model = v2_model(client, ws)
    asset = client.get(f"{MMS}/assets/{model['url'].removeprefix('aml://asset/')}").json()
    (artifact,) = asset["artifacts"]
    hex_id = model["url"].removeprefix("aml://asset/")
    assert artifact == {"id": None, "prefix": f"ModelVersion/{hex_id}/m"}
    listed = client.get(f"{PREFIX}/{artifact['prefix']}").json()["value"]
    assert [a["path"] for a in listed] == ["m/model.pkl", "m/sub/w.txt"]
    account = storage.account_for(ws)
    assert urlsplit(listed[0]["contentUri"]).path == f"/{account.default_container}/m/model.pkl"
    # Only the version's own folder: not its siblings, nor anything v1 could write.
    assert client.get(f"{PREFIX}/ModelVersion/{hex_id}/m-sibling").json()["value"] == []
    assert client.get(f"{CONTENT}/ModelVersion/{hex_id}/solo.pkl").status_code == 404
    assert client.get(f"{CONTENT}/ModelVersion/{hex_id}/m/model.pkl").status_code == 200
    body = {"paths": [{"path": "m/new.txt"}]}
    response = client.post(f"{ARTIFACTS}/ModelVersion/{hex_id}", body, format="json")
    assert response.status_code == 400, response.content


def test_a_v2_single_file_model_lists_that_file(client, ws):
    model = v2_model(client, ws, path="solo.pkl", name="solo")
    hex_id = model["url"].removeprefix("aml://asset/")
    listed = client.get(f"{PREFIX}/ModelVersion/{hex_id}/solo.pkl").json()["value"]
    assert [a["path"] for a in listed] == ["solo.pkl"]


# -- changing and deleting models


def json_patch(client, model_id, operations):
    import json

    return client.generic(
        "PATCH",
        f"{MMS}/models/{model_id}",
        json.dumps(operations),
        content_type="application/json-patch+json",
    )


def test_a_json_patch_changes_description_tags_and_properties_both_apis_show(client, ws):
    upload(client, ws)
    register(client, ws)
    response = json_patch(
        client,
        "m1:1",
        [
            {"op": "replace", "path": "/kvTags", "value": {"team": "b", "stage": "prod"}},
            {"op": "replace", "path": "/description", "value": "ridge"},
            {"op": "add", "path": "/properties", "value": {"auc": "0.9"}},
        ],
    )
    assert response.status_code == 200, response.content
    model = response.json()
    assert (model["kvTags"], model["description"], model["properties"]) == (
        {"team": "b", "stage": "prod"},
        "ridge",
        {"auc": "0.9"},
    )
    v2 = client.get(url("/models/m1/versions/1")).json()["properties"]
    assert (v2["tags"], v2["description"], v2["properties"]) == (
        {"team": "b", "stage": "prod"},
        "ridge",
        {"auc": "0.9"},
    )
    removed = json_patch(client, "m1:1", [{"op": "remove", "path": "/kvTags/stage"}])
    assert removed.json()["kvTags"] == {"team": "b"}


@pytest.mark.parametrize(
    "operations",
    [
        [{"op": "replace", "path": "/url", "value": "aml://asset/x"}],
        [{"op": "add", "path": "/datasets", "value": []}],
        [{"op": "replace", "path": "/kvTags/nope/deeper", "value": "x"}],
        [{"op": "remove", "path": "/kvTags/nope"}],
        [{"op": "replace", "path": "/kvTags", "value": {"team": 1}}],
        [{"op": "replace", "path": "/description", "value": 3}],
        [{"op": "move", "from": "/name", "path": "/description"}],
        [{"op": "frobnicate", "path": "/description", "value": "x"}],
        [{"path": "/description", "value": "x"}],
        {"op": "replace", "path": "/description", "value": "x"},
        [{"op": "replace", "path": "/description", "value": "x"}, "not an operation"],
    ],
)
def test_a_bad_json_patch_is_a_400_and_changes_nothing(client, ws, operations):
    upload(client, ws)
    register(client, ws)
    before = client.get(f"{MMS}/models/m1:1").json()
    response = json_patch(client, "m1:1", operations)
    assert response.status_code == 400, response.content
    assert (response.json()["code"], response.json()["statusCode"]) == ("BadRequest", 400)
    assert client.get(f"{MMS}/models/m1:1").json() == before


def test_deleting_a_model_removes_the_version_from_both_apis(client, ws):
    upload(client, ws)
    register(client, ws)
    register(client, ws)
    response = client.delete(f"{MMS}/models/m1:1")
    assert response.status_code == 200, response.content
    assert client.get(f"{MMS}/models/m1:1").status_code == 404
    assert client.get(url("/models/m1/versions/1")).status_code == 404
    assert client.get(f"{MMS}/models/m1:2").status_code == 200


@pytest.mark.parametrize("method", ["delete", "patch"])
def test_changing_an_unknown_model_is_a_404_model_not_found(client, ws, method):
    response = getattr(client, method)(f"{MMS}/models/nope:1", [], format="json")
    assert response.status_code == 404, response.content
    assert (response.json()["code"], response.json()["statusCode"]) == ("ModelNotFound", 404)
