"""Azure's ML SDK v2 (azure-ai-ml, ``MLClient``), unchanged and in a virtualenv of its own,
walks the safe rollout against the real stack: tests/clients/sdk_v2_rollout.py is the walk,
written as an Azure user writes it; this test runs it and checks every step's result."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.system.conftest import ROOT
from tests.system.test_cli import predictions

# The client's python, from the virtualenv bin/test builds (bin/_prepare.sh,
# ensure_client_venv) for tests/clients/azure-ai-ml.txt.
CLIENT_PYTHON = os.environ.get("WEIR_AZURE_AI_ML_PYTHON")
SCRIPT = ROOT / "tests" / "clients" / "sdk_v2_rollout.py"
STEPS = [
    "ml_client",
    "workspace_get",
    "endpoint_create",
    "blue_create",
    "traffic_blue_100",
    "invoke_endpoint",
    "green_create",
    "mirror_green_10",
    "invoke_while_mirroring",
    "get_logs_green",
    "traffic_90_10",
    "invoke_split",
    "get_keys",
    "regenerate_keys",
    "scale_blue_to_2",
    "traffic_green_100",
    "invoke_after_switch",
    "invoke_blue",
    "invoke_green",
    "delete_blue",
    "delete_endpoint",
]

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        not CLIENT_PYTHON, reason="WEIR_AZURE_AI_ML_PYTHON is not set: run the suite with bin/test"
    ),
]


def test_the_sdk_v2_walks_the_safe_rollout(stack, workspace, models, tmp_path):
    expected = tmp_path / "expected.json"
    expected.write_text(json.dumps({name: predictions(path) for name, path in models.items()}))
    # Nothing of this project's virtualenv leaks into the client's.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(
        WEIR_URL=stack.base_url,
        WEIR_BLOB_URL=stack.blob_url,
        WEIR_TOKEN=stack.token,
        WEIR_SUBSCRIPTION=stack.subscription,
        WEIR_GROUP="rg1",
        WEIR_WORKSPACE=stack.workspace_name,
        WEIR_EXAMPLES=str(ROOT / "examples" / "online"),
        WEIR_EXPECTED=str(expected),
        # What the README tells users to do to trust Weir's certificate.
        REQUESTS_CA_BUNDLE=stack.ca_bundle,
    )
    done = subprocess.run(
        [CLIENT_PYTHON, str(SCRIPT)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    # One JSON line per step; the SDK's progress dots may come before it on the line.
    steps = [
        json.loads(line[line.index('{"step"') :])
        for line in done.stdout.splitlines()
        if '{"step"' in line
    ]
    failed = next((step for step in steps if not step["ok"]), None)
    assert failed is None, f"step {failed['step']} failed:\n{failed['detail']}"
    assert [step["step"] for step in steps] == STEPS, (
        f"exit {done.returncode}; stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    )
    assert done.returncode == 0, done.stderr[-3000:]
