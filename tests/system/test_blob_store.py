"""The blob store over HTTPS: Azure's azure-storage-blob client, SAS checks, path safety."""

import hashlib
import os
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

pytestmark = pytest.mark.system

BIG = 9 * 1024 * 1024  # over 8 MB: with 4 MB single-put limit it goes up in blocks


@pytest.fixture(scope="module")
def files():
    return {
        "score.py": b"def init():\n    pass\n",
        "pkg/util.py": b"X = 1\n",
        "weights/big.bin": os.urandom(BIG),
    }


def pending_upload(stack, workspace, collection="codes", name="src", version="1"):
    return stack.call(
        "POST", f"{workspace}/{collection}/{name}/versions/{version}/startPendingUpload", {}
    ).json()


def directory_client(stack, sas_uri):
    client = stack.container_client(
        sas_uri, max_single_put_size=4 * 1024 * 1024, max_block_size=4 * 1024 * 1024
    )
    directory = urlsplit(sas_uri).path.split(f"/{client.container_name}/", 1)[1]
    return client, directory


def test_a_directory_goes_up_in_blocks_and_comes_back_byte_identical(stack, workspace, files):
    pending = pending_upload(stack, workspace)
    sas_uri = pending["blobReferenceForConsumption"]["credential"]["sasUri"]
    client, directory = directory_client(stack, sas_uri)
    for name, content in files.items():
        client.upload_blob(f"{directory}/{name}", content, metadata={"upload_status": "done"})

    # The big file was committed from several blocks (Put Block + Put Block List).
    big = client.get_blob_client(f"{directory}/weights/big.bin")
    assert big.get_blob_properties().size == BIG
    assert big.get_blob_properties().metadata == {"upload_status": "done"}

    listed = {
        b.name: b for b in client.list_blobs(name_starts_with=directory, include=["metadata"])
    }
    assert sorted(listed) == sorted(f"{directory}/{name}" for name in files)
    assert listed[f"{directory}/score.py"].metadata == {"upload_status": "done"}

    blob_uri = pending["blobReferenceForConsumption"]["blobUri"]
    content_hash = hashlib.sha256(b"".join(files[n] for n in sorted(files))).hexdigest()
    code = {
        "properties": {
            "codeUri": blob_uri,
            "properties": {"hash_sha256": content_hash, "hash_version": "202208"},
        }
    }
    assert stack.call("PUT", f"{workspace}/codes/src/versions/1", code).status_code == 201

    # Read every file back through the SDK (the big one in ranged chunks).
    for name, content in files.items():
        downloaded = client.download_blob(f"{directory}/{name}", max_concurrency=2).readall()
        assert hashlib.sha256(downloaded).digest() == hashlib.sha256(content).digest(), name

    # The same directory again is found by its hash: nothing needs uploading.
    found = stack.call(
        "GET", f"{workspace}/codes/src/versions?hash={content_hash}&hashVersion=202208"
    ).json()["value"]
    assert [v["properties"]["codeUri"] for v in found] == [blob_uri]


def test_a_model_registered_from_a_datastore_path(stack, workspace):
    secrets = stack.call("POST", f"{workspace}/datastores/workspaceblobstore/listSecrets").json()
    datastore = stack.call("GET", f"{workspace}/datastores/workspaceblobstore").json()
    account = datastore["properties"]["accountName"]
    container = datastore["properties"]["containerName"]
    client = stack.container_client(f"{stack.blob_url}/{account}/{container}?{secrets['sasToken']}")
    client.upload_blob("models/iris/model.pkl", b"pickled")
    uri = "azureml://datastores/workspaceblobstore/paths/models/iris/"
    response = stack.call(
        "PUT", f"{workspace}/models/iris/versions/1", {"properties": {"modelUri": uri}}
    )
    assert response.status_code == 201, response.text
    missing = "azureml://datastores/workspaceblobstore/paths/models/nothing-here/"
    refused = stack.call(
        "PUT", f"{workspace}/models/iris/versions/2", {"properties": {"modelUri": missing}}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["target"] == "properties.modelUri"


def _with(sas_uri: str, **changes) -> str:
    parts = urlsplit(sas_uri)
    fields = dict(parse_qsl(parts.query))
    fields.update(changes)
    return parts._replace(query=urlencode(fields)).geturl()


def test_expired_tampered_and_out_of_scope_sas_are_refused(stack, workspace):
    sas_uri = pending_upload(stack, workspace)["blobReferenceForConsumption"]["credential"][
        "sasUri"
    ]
    client, directory = directory_client(stack, sas_uri)
    client.upload_blob(f"{directory}/ok.txt", b"ok")

    def put(uri: str, path: str) -> requests.Response:
        parts = urlsplit(uri)
        target = parts._replace(path=f"{parts.path}/{path}").geturl()
        return requests.put(
            target, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}, verify=stack.ca_bundle
        )

    assert put(sas_uri, "fine.txt").status_code == 201
    expired = _with(sas_uri, se="2020-01-01T00:00:00Z")
    more_rights = _with(sas_uri, sp="racwdl" + "x")
    sig = dict(parse_qsl(urlsplit(sas_uri).query))["sig"]
    # One character changed (a signature that already starts with "A" gets a "B").
    tampered_sig = _with(sas_uri, sig=("B" if sig[0] == "A" else "A") + sig[1:])
    for bad in (expired, more_rights, tampered_sig):
        response = put(bad, "nope.txt")
        assert response.status_code == 403, response.text
        assert response.headers["x-ms-error-code"] == "AuthenticationFailed"

    # The SAS is for this upload's directory only: a sibling directory is out of scope.
    parts = urlsplit(sas_uri)
    sibling = parts._replace(path=parts.path.rsplit("/", 1)[0] + "/someone-else").geturl()
    assert put(sibling, "steal.txt").status_code == 403

    # A read-only SAS cannot write; no SAS at all is refused.
    secrets = stack.call("POST", f"{workspace}/datastores/workspaceblobstore/listSecrets").json()
    assert "w" in dict(parse_qsl(secrets["sasToken"]))["sp"]
    no_sas = parts._replace(query="").geturl()
    assert put(no_sas, "anon.txt").status_code == 403

    # Through the SDK, too: an expired SAS is an authentication error.
    expired_client, _ = directory_client(stack, expired)
    with pytest.raises((ClientAuthenticationError, HttpResponseError)) as refused:
        expired_client.get_blob_client(f"{directory}/ok.txt").download_blob().readall()
    assert refused.value.status_code == 403


def test_a_directory_sas_lists_only_its_own_directory(stack, workspace):
    """A sibling whose name starts with the directory's (``{dir}-sibling/``) is outside the
    directory SAS: listing does not show it, whatever prefix the client asks for."""
    sas_uri = pending_upload(stack, workspace)["blobReferenceForConsumption"]["credential"][
        "sasUri"
    ]
    client, directory = directory_client(stack, sas_uri)
    client.upload_blob(f"{directory}/mine.txt", b"mine")
    secrets = stack.call("POST", f"{workspace}/datastores/workspaceblobstore/listSecrets").json()
    account, container = urlsplit(sas_uri).path.lstrip("/").split("/")[:2]
    whole = stack.container_client(f"{stack.blob_url}/{account}/{container}?{secrets['sasToken']}")
    whole.upload_blob(f"{directory}-sibling/secret.txt", b"theirs", metadata={"owner": "other"})
    whole.upload_blob(f"{directory}0", b"theirs too")

    for prefix in (directory, f"{directory}/", f"{directory}/m"):
        listed = [b.name for b in client.list_blobs(name_starts_with=prefix, include=["metadata"])]
        assert listed == [f"{directory}/mine.txt"], prefix
    walked = [b.name for b in client.walk_blobs(name_starts_with=directory, delimiter="/")]
    assert walked == [f"{directory}/"]
    # The container SAS still sees everything.
    assert len(list(whole.list_blobs(name_starts_with=directory))) == 3


@pytest.mark.parametrize("path", ["a/../b.txt", "../escape.txt", "a/./b.txt", "a//b.txt"])
def test_unsafe_blob_paths_are_refused(stack, workspace, path):
    sas_uri = pending_upload(stack, workspace)["blobReferenceForConsumption"]["credential"][
        "sasUri"
    ]
    parts = urlsplit(sas_uri)
    # Sent percent-encoded so no client or server normalizes the path away first.
    encoded = path.replace(".", "%2E").replace("/", "%2F")
    target = parts._replace(path=f"{parts.path}/{encoded}").geturl()
    response = requests.put(
        target, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}, verify=stack.ca_bundle
    )
    assert response.status_code == 400, response.text
    assert response.headers["x-ms-error-code"] == "InvalidResourceName"


def test_an_oversized_upload_is_a_413_and_stores_nothing(stack, workspace):
    limit = int(stack.env["WEIR_BLOB_MAX_UPLOAD"])
    sas_uri = pending_upload(stack, workspace)["blobReferenceForConsumption"]["credential"][
        "sasUri"
    ]
    parts = urlsplit(sas_uri)
    target = parts._replace(path=f"{parts.path}/huge.bin").geturl()
    response = requests.put(
        target,
        data=b"x" * (limit + 1),
        headers={"x-ms-blob-type": "BlockBlob"},
        verify=stack.ca_bundle,
    )
    assert response.status_code == 413
    assert response.headers["x-ms-error-code"] == "RequestBodyTooLarge"
    client, directory = directory_client(stack, sas_uri)
    assert list(client.list_blobs(name_starts_with=directory)) == []


def test_host_style_addresses_reach_the_same_blobs(stack, workspace):
    sas_uri = pending_upload(stack, workspace)["blobReferenceForConsumption"]["credential"][
        "sasUri"
    ]
    client, directory = directory_client(stack, sas_uri)
    client.upload_blob(f"{directory}/hello.txt", b"hello")
    parts = urlsplit(sas_uri)
    account, rest = parts.path.lstrip("/").split("/", 1)
    # {account}.blob.{domain}: the account comes from the host name, not the path.
    response = requests.get(
        parts._replace(path=f"/{rest}/hello.txt").geturl(),
        headers={"Host": f"{account}.blob.localhost:{parts.port}"},
        verify=stack.ca_bundle,
    )
    assert response.status_code == 200, response.text
    assert response.content == b"hello"


def test_no_sas_signature_reaches_the_server_logs(stack, workspace):
    sas_uri = pending_upload(stack, workspace)["blobReferenceForConsumption"]["credential"][
        "sasUri"
    ]
    client, directory = directory_client(stack, sas_uri)
    client.upload_blob(f"{directory}/logged.txt", b"x")
    signature = dict(parse_qsl(urlsplit(sas_uri).query))["sig"]
    server_log = Path(stack.env["WEIR_DATA_DIR"]) / "server.log"
    # The server writes its access line once the response is sent: wait for it.
    deadline = time.monotonic() + 10
    while f"{directory}/logged.txt" not in server_log.read_text():
        assert time.monotonic() < deadline, "the request was never logged"
        time.sleep(0.05)
    logs = server_log.read_text()
    assert f"{directory}/logged.txt" in logs  # the request was logged...
    assert "sig=" not in logs and signature not in logs  # ...without its signature


def test_the_init_containers_fetch_copies_a_directory(stack, workspace, tmp_path):
    """dataplane.fetch (what a Kubernetes pod's init container runs) against the real blob
    server: every file under the directory, nested paths kept, nothing beside it."""
    import subprocess
    import sys

    from tests.system.conftest import ROOT

    files = {"model/a.pkl": b"A" * 70_000, "model/sub/b.txt": b"b", "other/c.txt": b"c"}
    directory_uri = stack.upload(workspace, files, "models")
    secrets = stack.call("POST", f"{workspace}/datastores/workspaceblobstore/listSecrets").json()
    target = tmp_path / "fetched"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "dataplane.fetch",
            f"{directory_uri}/model?{secrets['sasToken']}",
            "--to",
            str(target),
            "--ca-bundle",
            stack.ca_bundle,
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    fetched = {
        str(path.relative_to(target)): path.read_bytes()
        for path in target.rglob("*")
        if path.is_file()
    }
    assert fetched == {"a.pkl": b"A" * 70_000, "sub/b.txt": b"b"}
