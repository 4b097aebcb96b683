"""Datastores, pending uploads and the asset URIs that point into Weir's storage."""

from urllib.parse import parse_qs, urlsplit

import pytest

from controlplane.core.models import ModelVersion, StorageAccount
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
