"""Azure's SDK v1 (azureml-core), unchanged and in a virtualenv of its own, connects to Weir:
tests/clients/sdk_v1_workspace.py builds a ``Workspace`` as a v1 script does; this test
checks what the SDK read."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from tests.system.conftest import ROOT
from tests.system.test_azure_ai_ml import client_env

# The client's python, from the virtualenv bin/test builds for tests/clients/azureml-core.txt.
CLIENT_PYTHON = os.environ.get("WEIR_AZUREML_CORE_PYTHON")

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        not CLIENT_PYTHON, reason="WEIR_AZUREML_CORE_PYTHON is not set: run the suite with bin/test"
    ),
]


def test_a_v1_workspace_connects_with_a_weir_token(stack, workspace, tmp_path):
    env = client_env()
    env.update(
        HOME=str(tmp_path),  # the SDK caches what discovery told it in ~/.azureml
        REQUESTS_CA_BUNDLE=stack.ca_bundle,
        WEIR_URL=stack.base_url,
        WEIR_TOKEN=stack.token,
        WEIR_SUBSCRIPTION=stack.subscription,
        WEIR_GROUP="rg1",
        WEIR_WORKSPACE=stack.workspace_name,
    )
    done = subprocess.run(
        [CLIENT_PYTHON, str(ROOT / "tests" / "clients" / "sdk_v1_workspace.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert (seen["name"], seen["resource_group"]) == (stack.workspace_name, "rg1")
    assert seen["subscription_id"] == stack.subscription
    assert seen["location"] == "local"
    assert seen["id"].lower() == workspace.lower()
    # The token's exp claim, read by the SDK: the API token expires in days, not now.
    assert seen["token_expires_on"] > time.time() + 3600
    # Every service the SDK will call is Weir's, found through the discovery document.
    assert seen["discovery"].startswith(f"{stack.base_url}/discovery/workspaces/")
    for service in ("history", "modelmanagement", "api"):
        assert seen[service] == stack.base_url, (service, seen)
