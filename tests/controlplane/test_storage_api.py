"""Datastores, pending uploads and the asset URIs that point into Weir's storage."""

from urllib.parse import parse_qs, urlsplit

import pytest

from controlplane.blobstore.models import PendingUpload, StorageAccount
from controlplane.core.models import ModelVersion
from tests.conftest import WS, assert_arm_error, url


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


def start(client, path="/codes/src/versions/1", **body):
    return client.post(url(f"{path}/startPendingUpload"), body, format="json")


def test_pending_upload_ids_are_issued_by_the_server(client, workspace):
    first = start(client, pendingUploadType="TemporaryBlobReference").json()
    second = start(client, pendingUploadId=None).json()
    # What azure-ai-ml sends: no id; every call is a new directory.
    assert first["pendingUploadId"] != second["pendingUploadId"]
    assert PendingUpload.objects.filter(collection="codes", name="src", version="1").count() == 2

    # Asking again with an id Weir issued for this version gives the same directory.
    again = start(client, pendingUploadId=first["pendingUploadId"])
    assert again.status_code == 200, again.content
    assert again.json()["pendingUploadId"] == first["pendingUploadId"]
    blob_uri = again.json()["blobReferenceForConsumption"]["blobUri"]
    assert blob_uri == first["blobReferenceForConsumption"]["blobUri"]
    assert PendingUpload.objects.count() == 2


@pytest.mark.parametrize(
    "path",
    [
        "/codes/src/versions/2",  # another version
        "/codes/other/versions/1",  # another name
        "/models/src/versions/1",  # another kind of asset
    ],
)
def test_an_id_issued_for_another_asset_is_refused(client, workspace, path):
    issued = start(client).json()["pendingUploadId"]
    response = start(client, path, pendingUploadId=issued)
    error = assert_arm_error(response, 400, "ValidationError", "pendingUploadId")
    assert issued in error["message"]


def test_an_id_issued_in_another_workspace_is_refused(client, workspace):
    issued = start(client).json()["pendingUploadId"]
    other = WS.rsplit("/", 1)[0] + "/elsewhere"
    assert client.put(url(other), {"location": "local"}, format="json").status_code == 201
    response = start(client, f"{other}/codes/src/versions/1", pendingUploadId=issued)
    assert_arm_error(response, 400, "ValidationError", "pendingUploadId")


@pytest.mark.parametrize(
    "value",
    [
        "00000000-0000-0000-0000-000000000000",  # well formed, never issued
        "3f2504e0-4f89-11d3-9a0c-0305e82c3301",
        False,  # read as the integer 0, the all-zero UUID, by a lenient parser
        0,
        1.5,
        ["3f2504e0-4f89-11d3-9a0c-0305e82c3301"],
        {"id": "x"},
        "../../etc",
        "",
    ],
)
def test_a_client_chosen_or_badly_typed_id_is_refused(client, workspace, value):
    response = start(client, pendingUploadId=value)
    assert_arm_error(response, 400, "ValidationError", "pendingUploadId")
    assert not PendingUpload.objects.exists()


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
