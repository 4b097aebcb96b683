"""Azure's SDK v1 (azureml-core), unchanged and in a virtualenv of its own, works with Weir:
tests/clients/sdk_v1_walk.py builds a ``Workspace`` and walks the model registry as a v1
script does; this test checks what the SDK read, then reads the same models through the v2
API and their bytes through the blob store."""

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
]


def test_a_v1_script_registers_and_finds_models(stack, workspace, tmp_path):
    env = client_env()
    env.update(
        HOME=str(tmp_path),  # the SDK caches what discovery told it in ~/.azureml
        REQUESTS_CA_BUNDLE=stack.ca_bundle,
        WEIR_URL=stack.base_url,
        WEIR_BLOB_URL=stack.blob_url,
        WEIR_TOKEN=stack.token,
        WEIR_SUBSCRIPTION=stack.subscription,
        WEIR_GROUP="rg1",
        WEIR_WORKSPACE=stack.workspace_name,
    )
    done = subprocess.run(
        [CLIENT_PYTHON, str(ROOT / "tests" / "clients" / "sdk_v1_walk.py")],
        cwd=tmp_path,  # the SDK uploads only paths under its working directory
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
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
    assert sorted(found["id"] for found in seen["list"]) == ["m1:1", "m1:2"]
    for missing in ("missing_by_name", "missing_by_version"):
        assert seen[missing]["exception"] == "WebserviceException"
        assert seen[missing]["message"].startswith("ModelNotFound"), seen[missing]

    # One model, two views: the v2 API shows the version, pointing at the uploaded folder.
    version = stack.call("GET", f"{workspace}/models/m1/versions/1")
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
