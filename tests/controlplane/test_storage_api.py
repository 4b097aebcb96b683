"""Datastores, pending uploads and the asset URIs that point into Weir's storage."""

from urllib.parse import parse_qs, urlsplit

import pytest

from controlplane.blobstore.models import StorageAccount
from controlplane.core.models import ModelVersion
from tests.conftest import assert_arm_error, url


def model(uri: str) -> dict:
    return {"properties": {"modelUri": uri}}


def test_the_default_datastore(client, workspace):
    account = StorageAccount.objects.get()
    listed = client.get(url("/datastores")).json()["value"]
    assert [d["name"] for d in listed] == ["workspaceblobstore"]
    got = client.get(url("/datastores/WorkspaceBlobStore")).json()
    assert got["properties"]["datastoreType"] == "AzureBlob"
    assert got["properties"]["isDefault"] is True
    assert got["properties"]["accountName"] == account.name
    assert got["properties"]["containerName"] == account.default_container
    assert_arm_error(client.get(url("/datastores/other")), 404, "ResourceNotFound")


def test_list_secrets_gives_an_expiring_container_sas(client, workspace):
    secrets = client.post(url("/datastores/workspaceblobstore/listSecrets")).json()
    assert secrets["secretsType"] == "Sas"
    fields = parse_qs(secrets["sasToken"])
    assert fields["sr"] == ["c"] and fields["se"] and fields["sig"]


def test_start_pending_upload_gives_a_directory_to_write_into(client, workspace):
    response = client.post(
        url("/codes/src/versions/1/startPendingUpload"),
        {"pendingUploadType": "TemporaryBlobReference"},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    reference = body["blobReferenceForConsumption"]
    assert reference["blobUri"].endswith(f"/LocalUpload/{body['pendingUploadId']}")
    assert reference["credential"]["credentialType"] == "SAS"
    sas_uri = urlsplit(reference["credential"]["sasUri"])
    assert reference["blobUri"].endswith(sas_uri.path)
    fields = parse_qs(sas_uri.query)
    assert fields["sr"] == ["d"] and "w" in fields["sp"][0]
    assert "Microsoft.Storage/storageAccounts/" in reference["storageAccountArmId"]


def test_start_pending_upload_is_there_for_models_too(client, workspace):
    response = client.post(url("/models/m/versions/1/startPendingUpload"), {}, format="json")
    assert response.status_code == 200


@pytest.mark.parametrize(
    "uri, message",
    [
        (
            "azureml://datastores/workspaceblobstore/paths/never-uploaded/",
            "nothing has been uploaded",
        ),
        ("azureml://datastores/elsewhere/paths/m/", "does not exist"),
        ("azureml://datastores/workspaceblobstore/paths/m/../c/", "'..'"),
        ("azureml://datastores/workspaceblobstore/paths//etc/passwd", "absolute"),
        ("https://localhost:8444/weirsomeoneelse/container/m/", "not in this workspace"),
        ("ftp://example.com/model.pkl", "neither"),
    ],
)
def test_content_uris_must_point_at_uploaded_blobs(client, workspace, uri, message):
    response = client.put(url("/models/m/versions/1"), model(uri), format="json")
    error = assert_arm_error(response, 400, "ValidationError", "properties.modelUri")
    assert message in error["message"]
    assert not ModelVersion.objects.exists()


def test_a_blob_url_into_the_workspace_storage_is_accepted(client, workspace):
    account = StorageAccount.objects.get()
    uri = f"https://localhost:8444/{account.name}/{account.default_container}/m/model.pkl"
    assert client.put(url("/models/m/versions/1"), model(uri), format="json").status_code == 201


def test_code_versions_are_found_by_content_hash(client, workspace):
    body = {
        "properties": {
            "codeUri": "azureml://datastores/workspaceblobstore/paths/c/",
            "properties": {"hash_sha256": "abc123", "hash_version": "202208"},
        }
    }
    assert client.put(url("/codes/src/versions/1"), body, format="json").status_code == 201
    found = client.get(url("/codes/src/versions", "hash=abc123&hashVersion=202208")).json()
    assert [v["name"] for v in found["value"]] == ["1"]
    assert client.get(url("/codes/src/versions", "hash=other")).json()["value"] == []
    # Azure's SDK asks under a fresh name it made up: the same version answers, by its id.
    fresh = "/codes/7f1c2f0e-6f3b-4f0a-9a77-1b2c3d4e5f60/versions"
    found = client.get(url(fresh, "hash=abc123&hashVersion=202208"))
    assert found.status_code == 200
    assert [v["id"].rsplit("/codes/", 1)[1] for v in found.json()["value"]] == ["src/versions/1"]
    assert client.get(url(fresh, "hash=other")).json()["value"] == []
    # Without a hash, an unknown name is still 404.
    assert client.get(url(fresh)).status_code == 404


@pytest.fixture
def allowed(tmp_path, settings):
    root = tmp_path / "allowed"
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "score.py").write_bytes(b"def run(data):\n    return data\n")
    (root / "src" / "pkg" / "util.py").write_bytes(b"X = 1\n")
    settings.WEIR_LOCAL_ASSET_ROOTS = [str(root)]
    return root


def code(uri: str) -> dict:
    return {"properties": {"codeUri": uri}}


def test_a_local_directory_is_copied_into_the_datastore(client, workspace, allowed):
    from controlplane.blobstore.backends import blob_backend
    from controlplane.blobstore.models import Blob

    response = client.put(
        url("/codes/src/versions/1"), code(f"file://{allowed}/src"), format="json"
    )
    assert response.status_code == 201, response.content
    uri = response.json()["properties"]["codeUri"]
    assert uri.startswith("azureml://datastores/workspaceblobstore/paths/LocalUpload/")
    prefix = uri.split("/paths/", 1)[1]
    stored = {b.name.removeprefix(prefix): b for b in Blob.objects.filter(name__startswith=prefix)}
    assert sorted(stored) == ["pkg/util.py", "score.py"]
    with blob_backend().open(stored["score.py"].digest) as handle:
        assert handle.read() == (allowed / "src" / "score.py").read_bytes()


@pytest.mark.parametrize("where", ["outside", "missing", "link-to-outside", "link-inside"])
def test_local_paths_outside_the_roots_or_through_links_are_refused(
    client, workspace, allowed, tmp_path, where
):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    target = {
        "outside": outside,
        "missing": allowed / "nope",
        "link-to-outside": allowed / "escape",
        "link-inside": allowed / "src",
    }[where]
    if where == "link-to-outside":
        target.symlink_to(outside)
    if where == "link-inside":
        (allowed / "src" / "secret").symlink_to(outside / "secret.txt")
    response = client.put(url("/codes/src/versions/1"), code(f"file://{target}"), format="json")
    assert_arm_error(response, 400, "ValidationError", "properties.codeUri")
    from controlplane.blobstore.models import Blob
    from controlplane.core.models import CodeVersion

    assert not CodeVersion.objects.filter(container__name="src").exists()
    assert not Blob.objects.filter(name__startswith="LocalUpload/").exists()
