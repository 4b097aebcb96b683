"""Shared fixtures: an authenticated API client and ARM URL builders."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from controlplane.access.principals import make_first_owner
from controlplane.core.models import ApiToken

API = "api-version=2024-04-01"
SUB = "00000000-1111-2222-3333-444444444444"
WS = (
    f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.MachineLearningServices"
    "/workspaces/ws1"
)


def url(path: str, query: str = "") -> str:
    """An ARM URL under the test workspace (``path`` may be absolute)."""
    base = path if path.startswith("/subscriptions") else f"{WS}{path}"
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}{API}" + (f"&{query}" if query else "")


def assert_arm_error(response, status, code, target=None):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if target is not None:
        assert error["target"] == target
    return error


@pytest.fixture
def alice(db):
    """The tests' principal: the install's first, so Owner of every scope."""
    user = get_user_model().objects.create(username="alice")
    make_first_owner(user)
    return user


@pytest.fixture
def client(alice) -> APIClient:
    _, token = ApiToken.issue(alice, "tests", days=1)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


# Files every test workspace holds in its default datastore, for assets to point at.
SCORE = b"def init():\n    pass\n\ndef run(raw_data):\n    return {'echo': raw_data}\n"
STORED_FILES = {"m/model.pkl": b"model", "other/model.pkl": b"other", "c/score.py": SCORE}
# An environment with nothing beyond what the inference server needs: quick to build once,
# then reused from the cache by every test.
CONDA = "name: test\ndependencies:\n  - pip\n"
DEFAULT_DEPLOYMENT = {
    "environmentId": "azureml:test-env:1",
    "codeConfiguration": {"codeId": "azureml:test-score:1", "scoringScript": "score.py"},
}


@pytest.fixture
def workspace(client, agent):
    from controlplane.blobstore import storage
    from controlplane.core.models import Workspace

    response = client.put(url(""), {"location": "local"}, format="json")
    assert response.status_code == 201, response.content
    account = storage.account_for(Workspace.objects.get())
    for name, content in STORED_FILES.items():
        storage.write_blob(account, account.default_container, name, [content])
    environment = {"properties": {"image": "python:3.11-slim", "condaFile": CONDA}}
    response_env = client.put(url("/environments/test-env/versions/1"), environment, format="json")
    assert response_env.status_code == 201, response_env.content
    code = {"properties": {"codeUri": "azureml://datastores/workspaceblobstore/paths/c/"}}
    assert client.put(url("/codes/test-score/versions/1"), code, format="json").status_code == 201
    return response.json()


def put_endpoint(client, name="ep1", headers=None, **properties):
    body = {"location": "local", "properties": {"authMode": "Key", **properties}}
    return client.put(url(f"/onlineEndpoints/{name}"), body, format="json", **(headers or {}))


def put_deployment(client, endpoint="ep1", name="blue", capacity=1, **properties):
    body = {
        "location": "local",
        "sku": {"name": "Default", "capacity": capacity},
        "properties": {"endpointComputeType": "Managed", **DEFAULT_DEPLOYMENT, **properties},
    }
    return client.put(url(f"/onlineEndpoints/{endpoint}/deployments/{name}"), body, format="json")


def run_operations() -> int:
    """Run every pending operation's task body in this process, as a worker would (the
    system tests run the same tasks in a real worker). Returns how many ran."""
    import workers.tasks  # noqa: F401 - registers the tasks
    from controlplane.core.models import Operation
    from controlplane.core.services.operations import TASK_FOR_KIND
    from workers.celery_app import app

    pending = list(Operation.objects.filter(status="InProgress").order_by("started_at"))
    for operation in pending:
        app.tasks[TASK_FOR_KIND[operation.kind]](operation_id=str(operation.pk))
    return len(pending)


@pytest.fixture
def endpoint(client, workspace):
    response = put_endpoint(client)
    assert response.status_code == 201, response.content
    run_operations()
    return response.json()


@pytest.fixture
def model_version(client, workspace):
    body = {"properties": {"modelUri": "azureml://datastores/workspaceblobstore/paths/m/"}}
    response = client.put(url("/models/sklearn/versions/1"), body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture(scope="session")
def agent():
    """The real local agent, supervising the replicas the in-process tests deploy."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from django.conf import settings

    root = Path(settings.WEIR_AGENT_DIR)
    # Specs left by an interrupted earlier run would start replicas nobody asked for.
    for stale in [*root.glob("desired/*.json"), *root.glob("status/*.json")]:
        stale.unlink()
    process = subprocess.Popen(
        [sys.executable, "-m", "dataplane.agent"],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "WEIR_AGENT_DIR": str(root)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    yield root
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)


@pytest.fixture(autouse=True)
def _replicas_end_with_the_test(request):
    """Deployments live in a rolled-back transaction; their replicas must not outlive it."""
    yield
    if "agent" not in request.fixturenames:
        return
    import time
    from pathlib import Path

    from django.conf import settings

    root = Path(settings.WEIR_AGENT_DIR)
    for spec in (root / "desired").glob("*.json"):
        spec.unlink()
    deadline = time.monotonic() + 30
    while any((root / "status").glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
