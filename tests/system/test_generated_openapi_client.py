"""A client generated from the committed openapi.yaml creates an endpoint over HTTPS."""

import importlib
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def weir_client(tmp_path_factory):
    out = tmp_path_factory.mktemp("generated")
    subprocess.run(
        [
            "openapi-python-client",
            "generate",
            "--path",
            str(ROOT / "openapi.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(out / "weir_client"),
        ],
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("weir_client")
    finally:
        sys.path.remove(str(out))


def test_a_generated_client_creates_an_endpoint(stack, workspace, weir_client):
    from weir_client import AuthenticatedClient
    from weir_client.api.providers import operations_status_get
    from weir_client.api.resource_groups import (
        online_endpoints_create_or_update,
        online_endpoints_get,
    )
    from weir_client.models import OnlineEndpointRequest

    client = AuthenticatedClient(
        base_url=stack.base_url,
        token=stack.token,
        verify_ssl=ssl.create_default_context(cafile=stack.ca_bundle),
    )
    where = dict(
        subscription_id=stack.subscription,
        resource_group_name="rg1",
        workspace_name=stack.workspace_name,
    )
    body = OnlineEndpointRequest.from_dict(
        {"location": "local", "properties": {"authMode": "Key", "description": "generated"}}
    )
    created = online_endpoints_create_or_update.sync_detailed(
        endpoint_name="gen-ep", client=client, body=body, api_version="2024-04-01", **where
    )
    assert created.status_code == 201, created.content
    assert created.parsed.properties.provisioning_state == "Creating"

    operation_id = created.headers["Azure-AsyncOperation"].split("/")[-1].split("?")[0]
    for _ in range(100):
        status = operations_status_get.sync(
            subscription_id=stack.subscription,
            location="local",
            operation_id=operation_id,
            client=client,
            api_version="2024-04-01",
        )
        if status.status != "InProgress":
            break
        time.sleep(0.2)
    assert status.status == "Succeeded"
    got = online_endpoints_get.sync(
        endpoint_name="gen-ep", client=client, api_version="2024-04-01", **where
    )
    assert got.properties.provisioning_state == "Succeeded"
    assert got.properties.description == "generated"
