"""Azure's SDK v1 (azureml-core), unchanged and in a virtualenv of its own, works with Weir:
tests/clients/sdk_v1_walk.py builds a ``Workspace`` and walks the model registry as a v1
script does (register, find, list, download, update, delete); this test checks what the SDK
read and wrote, then reads the same models through the v2 API and their bytes through the
blob store."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import requests

from tests.system.conftest import ROOT
from tests.system.test_azure_ai_ml import client_env, walked

# The client's python, from the virtualenv bin/test builds for tests/clients/azureml-core.txt.
CLIENT_PYTHON = os.environ.get("WEIR_AZUREML_CORE_PYTHON")

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        not CLIENT_PYTHON, reason="WEIR_AZUREML_CORE_PYTHON is not set: run the suite with bin/test"
    ),
]


def run_v1_script(
    stack, cwd, script: str, *arguments: str, timeout: int = 300, **variables: str
) -> subprocess.CompletedProcess:
    """Run one of tests/clients' azureml-core scripts with the client's python, configured as
    sdk_v1_walk.py reads it, in ``cwd`` (the SDK uploads only paths under its working
    directory, and caches what discovery told it in ``$HOME/.azureml``)."""
    env = client_env()
    env.update(
        HOME=str(cwd),
        REQUESTS_CA_BUNDLE=stack.ca_bundle,
        WEIR_URL=stack.base_url,
        WEIR_BLOB_URL=stack.blob_url,
        WEIR_TOKEN=stack.token,
        WEIR_SUBSCRIPTION=stack.subscription,
        WEIR_GROUP="rg1",
        WEIR_WORKSPACE=stack.workspace_name,
        **variables,
    )
    return subprocess.run(
        [CLIENT_PYTHON, str(ROOT / "tests" / "clients" / script), *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


STEPS = [
    "workspace",
    "register",
    "get_by_name",
    "get_by_version",
    "register_again",
    "latest",
    "list",
    "missing_by_name",
    "missing_by_version",
    "download_folder",
    "download_again",
    "download_overwrite",
    "register_file",
    "download_file",
    "register_many",
    "download_many",
    "download_v2",
    "update",
    "tag_and_property",
    "update_bad",
    "delete",
    "deleted",
    "delete_again",
    "after_delete",
]

# The folder the walk registers as m1 (versions 1 and 2), as the SDK downloads it.
FOLDER = {"model.pkl": "pickled v1 model", "weights/w.txt": "0.5\n"}
# A model registered through the v2 API, which the walk downloads with the v1 SDK.
V2_FILES = {"model.pkl": "registered through v2", "sub/w.txt": "0.25\n"}


def test_a_v1_script_registers_finds_downloads_changes_and_deletes_models(
    stack, workspace, tmp_path
):
    v2_folder = stack.upload(
        workspace, {name: text.encode() for name, text in V2_FILES.items()}, collection="models"
    )
    body = {"properties": {"modelUri": v2_folder, "description": "v2"}}
    created = stack.call("PUT", f"{workspace}/models/v2m/versions/1", body)
    assert created.status_code == 201, created.text
    done = run_v1_script(stack, tmp_path, "sdk_v1_walk.py", WEIR_V2_MODEL="v2m:1")
    seen = walked(done, STEPS)

    connected = seen["workspace"]
    assert (connected["name"], connected["resource_group"]) == (stack.workspace_name, "rg1")
    assert connected["subscription_id"] == stack.subscription
    assert connected["location"] == "local"
    assert connected["id"].lower() == workspace.lower()
    # The token's exp claim, read by the SDK: the API token expires in days, not now.
    assert connected["token_expires_on"] > time.time() + 3600
    # Every service the SDK will call is Weir's, found through the discovery document.
    assert connected["discovery"].startswith(f"{stack.base_url}/discovery/workspaces/")
    for service in ("history", "modelmanagement", "api"):
        assert connected[service] == stack.base_url, (service, connected)

    first = seen["register"]
    assert (first["id"], first["name"], first["version"]) == ("m1:1", "m1", 1)
    assert first["url"].startswith("aml://asset/")
    assert seen["get_by_name"]["id"] == "m1:1"
    assert seen["get_by_version"] == first
    assert seen["register_again"]["id"] == "m1:2"
    assert seen["latest"]["id"] == "m1:2"
    assert sorted(found["id"] for found in seen["list"]) == ["m1:1", "m1:2", "v2m:1"]
    for missing in ("missing_by_name", "missing_by_version"):
        assert seen[missing]["exception"] == "WebserviceException"
        assert seen[missing]["message"].startswith("ModelNotFound"), seen[missing]

    # One model, two views: the v2 API shows the version, pointing at the uploaded folder
    # (version 2: the walk deletes version 1).
    version = stack.call("GET", f"{workspace}/models/m1/versions/2")
    assert version.status_code == 200, version.text
    uri = version.json()["properties"]["modelUri"]
    prefix = "azureml://datastores/workspaceblobstore/paths/"
    assert uri.startswith(prefix) and uri.endswith("/model/"), uri
    folder = uri.removeprefix(prefix)
    secrets = stack.call("POST", f"{workspace}/datastores/workspaceblobstore/listSecrets").json()
    datastore = stack.call("GET", f"{workspace}/datastores/workspaceblobstore").json()
    base = f"{stack.blob_url}/{datastore['properties']['accountName']}"
    base += f"/{datastore['properties']['containerName']}/{folder}"
    for name, content in (("model.pkl", b"pickled v1 model"), ("weights/w.txt", b"0.5\n")):
        blob = requests.get(
            f"{base}{name}?{secrets['sasToken']}", verify=stack.ca_bundle, timeout=30
        )
        assert (blob.status_code, blob.content) == (200, content), name

    assert_downloads(seen)
    assert_changes(stack, workspace, seen)


def assert_downloads(seen: dict) -> None:
    """Downloaded bytes are the registered ones: a folder (under its own name), a file, a
    folder listed over several pages, and a model registered through the v2 API."""
    assert seen["download_folder"] == {"path": "model", "files": FOLDER}
    assert seen["download_again"]["exception"] == "WebserviceException"
    assert "exist_ok" in seen["download_again"]["message"], seen["download_again"]
    assert seen["download_overwrite"] == seen["download_folder"]
    assert seen["register_file"]["id"] == "one:1"
    assert seen["download_file"] == {
        "path": "single.pkl",
        "files": {"single.pkl": "one pickled file"},
    }
    many = seen["download_many"]
    assert many["path"] == "many"
    assert many["files"] == {f"part-{i:03}.txt": f"part {i}\n" for i in range(130)}
    v2 = seen["download_v2"]
    assert v2["files"] == V2_FILES, v2


def assert_changes(stack, workspace: str, seen: dict) -> None:
    """What update, add_tags, remove_tags, add_properties and delete did, read back through
    the SDK and through the v2 API (the same model version)."""
    assert seen["update"] == {
        "description": "ridge, second fit",
        "tags": {"team": "a", "stage": "dev"},
        "properties": {},
    }
    changed = {
        "description": "ridge, second fit",
        "tags": {"team": "a", "owner": "v1-script"},
        "properties": {"auc": "0.91"},
    }
    assert seen["tag_and_property"] == changed
    version = stack.call("GET", f"{workspace}/models/m1/versions/2").json()["properties"]
    assert (version["description"], version["tags"], version["properties"]) == (
        changed["description"],
        changed["tags"],
        changed["properties"],
    )
    # A tag that is not a string is refused by the service; nothing changed.
    bad = seen["update_bad"]
    assert bad["exception"] == "WebserviceException"
    assert "400" in bad["message"], bad
    assert bad["after"] == changed

    # Deleted: gone for both APIs, and a second delete is the SDK's ModelNotFound.
    assert seen["deleted"]["message"].startswith("ModelNotFound"), seen["deleted"]
    assert seen["delete_again"]["message"].startswith("ModelNotFound"), seen["delete_again"]
    assert [found["id"] for found in seen["after_delete"]] == ["m1:2"]
    assert stack.call("GET", f"{workspace}/models/m1/versions/1").status_code == 404
    assert stack.call("GET", f"{workspace}/models/m1/versions/2").status_code == 200
