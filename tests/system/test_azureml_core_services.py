"""Azure's SDK v1 (azureml-core), unchanged and in its own virtualenv, deploys to Weir as a
v1 AKS script does (tests/clients/sdk_v1_deploy.py): an AksWebservice and an AksEndpoint on
an attached Kubernetes compute that Weir runs on this machine (``backend: local``). This test
checks what the SDK saw, what scoring answered, and the same endpoint through the v2 API and
``weir online-endpoint show``."""

from __future__ import annotations

import math
import subprocess

import pytest

from tests.system.conftest import cli_runner
from tests.system.test_azure_ai_ml import walked
from tests.system.test_azureml_core import CLIENT_PYTHON, run_v1_script
from tests.system.test_data_collection import collected, datastore, eventually

API = "api-version=2024-04-01"
REQUESTS = 300

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        not CLIENT_PYTHON, reason="WEIR_AZUREML_CORE_PYTHON is not set: run the suite with bin/test"
    ),
]

STEPS = [
    "register",
    "compute",
    "service_deploy",
    "service_run",
    "service_logs",
    "service_keys",
    "service_regen_key",
    "service_update",
    "service_token",
    "service_list",
    "service_delete",
    "endpoint_deploy",
    "create_version",
    "update_version",
    "split",
    "default_version",
    "bad_input",
    "delete_version",
    "endpoint_show",
]


def run_walk(stack, tmp_path, *arguments) -> subprocess.CompletedProcess:
    return run_v1_script(
        stack,
        tmp_path,
        "sdk_v1_deploy.py",
        *arguments,
        timeout=1200,
        WEIR_COMPUTE="aks1",
        WEIR_SPLIT_REQUESTS=str(REQUESTS),
    )


def test_a_v1_script_deploys_services_and_endpoint_versions(stack, workspace, tmp_path):
    attached = stack.call(
        "PUT",
        f"{workspace}/computes/aks1",
        {
            "location": "local",
            "properties": {"computeType": "Kubernetes", "properties": {"backend": "local"}},
        },
    )
    assert attached.status_code in (200, 201), attached.text

    seen = walked(run_walk(stack, tmp_path), STEPS)

    assert seen["register"] == ["scaler:1", "scaler:2"]
    assert seen["compute"] == {"name": "aks1", "type": "AKS"}

    # -- the AksWebservice
    deployed = seen["service_deploy"]
    assert deployed["state"] == "Healthy"
    assert deployed["compute_type"] == "AKS"
    assert deployed["scoring_uri"].endswith("/api/v1/service/svc1/score")
    assert (deployed["auth_enabled"], deployed["num_replicas"]) == (True, 1)
    assert (deployed["cpu"], deployed["memory_gb"]) == (0.1, 0.5)
    assert deployed["storage_enabled"] is True
    assert seen["service_run"] == {"prediction": [2, 4, 6], "scale": 2}
    assert "init" in seen["service_logs"]["logs"].lower() or seen["service_logs"]["logs"]
    first_keys = seen["service_keys"]
    regenerated = seen["service_regen_key"]
    assert regenerated["keys"][0] != first_keys[0]
    assert regenerated["keys"][1] == first_keys[1]
    assert regenerated["old_key_status"] == 401
    assert regenerated["run"]["prediction"] == [2, 4, 6]
    assert seen["service_update"] == {
        "auth_enabled": False,
        "token_auth_enabled": True,
        "num_replicas": 2,
        "state": "Healthy",
    }
    assert seen["service_token"]["token"].count(".") == 2
    assert seen["service_token"]["run"]["prediction"] == [2, 4, 6]
    assert ["svc1", "AKS"] in seen["service_list"]
    assert "WebserviceNotFound" in seen["service_delete"]["message"]
    assert stack.call("GET", f"{workspace}/onlineEndpoints/svc1").status_code == 404

    # -- the AksEndpoint
    endpoint = seen["endpoint_deploy"]
    assert endpoint["compute_type"] == "AKSENDPOINT"
    assert endpoint["scoring_uri"].endswith("/api/v1/service/ep1/score")
    ver1 = endpoint["versions"]["ver1"]
    assert (ver1["is_default"], ver1["version_type"], ver1["state"]) == (True, "Control", "Healthy")
    assert ver1["scoring_uri"].endswith("/api/v1/service/ep1/ver1/score")
    assert ver1["models"] == ["scaler:1"]

    created = seen["create_version"]
    assert created["ver2"]["traffic_percentile"] == 10
    assert (created["ver2"]["is_default"], created["ver2"]["version_type"]) == (False, "Treatment")
    assert created["ver2"]["state"] == "Healthy"
    assert created["ver2"]["models"] == ["scaler:2"]
    assert (created["ver1"]["collects"], created["ver2"]["collects"]) == (False, True)
    assert seen["update_version"]["ver2"]["traffic_percentile"] == 20

    # 20% of the requests to ver2 (scale 3), within 4.5 standard deviations.
    split = seen["split"]
    to_ver2 = split["scales"].get("3", 0)
    assert sum(split["scales"].values()) == REQUESTS
    spread = 4.5 * math.sqrt(REQUESTS * 0.2 * 0.8)
    assert abs(to_ver2 - REQUESTS * 0.2) <= spread, split["scales"]
    assert split["by_version"]["ver1"]["scale"] == 2
    assert split["by_version"]["ver2"]["scale"] == 3
    assert split["run"]["scale"] in (2, 3)

    # collect_model_data: each request ver2 scored is one request and one response record.
    served_by_ver2 = to_ver2 + 1 + (split["run"]["scale"] == 3)
    container = datastore(stack, workspace)
    records = eventually(
        lambda: (found := collected(container, "ver2", endpoint="ep1"))
        and len(found["response"]) >= served_by_ver2
        and found
    )
    assert records, "no records of ver2's requests"
    assert len(records["request"]) == len(records["response"]) == served_by_ver2
    assert all(r["data"] == {"data": [1, 2, 3]} for r in records["request"])
    assert all(r["data"] == {"prediction": [3, 6, 9], "scale": 3} for r in records["response"])
    assert collected(container, "ver1", endpoint="ep1") == {"request": [], "response": []}

    # ver2 becomes the default (taking what ver1's 30% leaves) and the Control version.
    versions = seen["default_version"]
    assert (versions["ver2"]["is_default"], versions["ver2"]["version_type"]) == (True, "Control")
    assert (versions["ver1"]["is_default"], versions["ver1"]["version_type"]) == (
        False,
        "Treatment",
    )
    assert versions["ver1"]["traffic_percentile"] == 30

    # Bad input is refused and changes nothing.
    bad = seen["bad_input"]
    assert "already" in bad["clash"]["message"].lower()
    assert "100" in bad["over_100"]["message"]
    assert bad["after"] == versions

    # After delete_version, ver2 alone takes all the traffic, through v2 and the CLI too.
    assert list(seen["delete_version"]) == ["ver2"]
    shown = stack.call("GET", f"{workspace}/onlineEndpoints/ep1").json()
    assert shown["properties"]["traffic"] == {"ver2": 100}
    deployments = stack.call("GET", f"{workspace}/onlineEndpoints/ep1/deployments").json()
    assert [d["name"] for d in deployments["value"]] == ["ver2"]
    weir = cli_runner(stack, tmp_path, tmp_path)
    assert weir.json("online-endpoint", "show", "-n", "ep1")["traffic"] == {"ver2": 100}

    deleted = walked(run_walk(stack, tmp_path, "delete"), ["endpoint_delete"])
    assert "WebserviceNotFound" in deleted["endpoint_delete"]["message"]
    assert stack.call("GET", f"{workspace}/onlineEndpoints/ep1").status_code == 404
