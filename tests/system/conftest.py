"""The real stack for system tests: Postgres, Redis, a Celery worker (with beat) and the
HTTPS server, each a separate process, on a database and Redis db of their own."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis
import requests

from dataplane.agent.supervisor import free_port
from tests.system.portal_browser import Person, launched_browser, make_person, sign_in

ROOT = Path(__file__).resolve().parents[2]
SCORE = b"def init():\n    pass\n\ndef run(raw_data):\n    return {'echo': raw_data}\n"
CONDA = "name: minimal\ndependencies:\n  - pip\n"
# Overridable, so two suites on one machine do not drop each other's database or flush each
# other's Redis db.
DATABASE = os.environ.get("WEIR_SYSTEM_TEST_DATABASE", "weir_system_test")
REDIS_DB = int(os.environ.get("WEIR_SYSTEM_TEST_REDIS_DB", "14"))
API = "api-version=2024-04-01"


@dataclass
class Stack:
    env: dict
    base_url: str
    ca_bundle: str
    token: str
    subscription: str = field(default_factory=lambda: str(uuid.uuid4()))
    blob_url: str = ""
    router_url: str = ""
    workspace_name: str = "ws1"
    metrics_url: str = ""
    workers: list = field(default_factory=list)
    servers: list = field(default_factory=list)
    others: list = field(default_factory=list)  # the agent and the router

    # ---- processes --------------------------------------------------------------------
    def start_worker(self) -> None:
        """The workers as bin/start runs them: one on the provision queue (with beat), one
        on the builds queue, one on the batch queue."""
        log = open(Path(self.env["WEIR_DATA_DIR"]) / "worker.log", "ab")  # noqa: SIM115
        schedule = str(Path(self.env["WEIR_DATA_DIR"]) / "beat-schedule")
        self.workers = [
            subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "workers", "worker", *arguments]
                + ["--loglevel", "INFO", "-n", f"system-{uuid.uuid4().hex[:6]}@%h"],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: a kill reaches its children
            )
            for arguments in (
                ["--beat", "--schedule", schedule, "-Q", "provision", "-c", "2"],
                ["-Q", "builds", "-c", "1"],
                ["-Q", "batch", "-c", "2"],
            )
        ]

    def stop_worker(self, sig=signal.SIGTERM) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                os.killpg(worker.pid, sig)
        for worker in self.workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        self.workers = []

    # ---- HTTP -------------------------------------------------------------------------
    def ws(self, name: str | None = None, rg: str = "rg1") -> str:
        name = name or self.workspace_name
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{rg}/providers/"
            f"Microsoft.MachineLearningServices/workspaces/{name}"
        )

    def call(self, method: str, path: str, body=None, **kwargs) -> requests.Response:
        target = path if path.startswith("https://") else f"{self.base_url}{path}"
        if "api-version=" not in target:
            target += ("&" if "?" in target else "?") + API
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return requests.request(
            method, target, json=body, headers=headers, verify=self.ca_bundle, timeout=30, **kwargs
        )

    def wait_for_status(self, status_url: str, timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.call("GET", status_url).json()
            if body["status"] != "InProgress":
                return body
            time.sleep(0.2)
        raise AssertionError(f"operation still InProgress after {timeout}s: {body}")

    def wait_for_location(self, location: str, timeout: float = 60) -> requests.Response:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = self.call("GET", location)
            if response.status_code != 202:
                return response
            assert int(response.headers["Retry-After"]) >= 1
            time.sleep(0.2)
        raise AssertionError(f"Location still 202 after {timeout}s")

    def upload(self, workspace: str, files: dict[str, bytes], collection: str = "codes") -> str:
        """Upload files as Azure's SDK does: startPendingUpload, then the Blob API through
        azure-storage-blob with the SAS it returned. Returns the directory's blob URI."""

        pending = self.call(
            "POST", f"{workspace}/{collection}/upload/versions/1/startPendingUpload", {}
        ).json()["blobReferenceForConsumption"]
        container = self.container_client(pending["credential"]["sasUri"])
        directory = pending["blobUri"].split(f"/{container.container_name}/", 1)[1]
        for name, content in files.items():
            container.upload_blob(f"{directory}/{name}", content)
        return pending["blobUri"]

    def register_runtime(self, workspace: str) -> dict:
        """Register a trivial scoring script and a minimal environment; returns the
        deployment properties that use them."""
        code_uri = self.upload(workspace, {"score.py": SCORE}, "codes")
        code = {"properties": {"codeUri": code_uri}}
        assert self.call("PUT", f"{workspace}/codes/echo/versions/1", code).status_code == 201
        environment = {"properties": {"image": "python:3.11-slim", "condaFile": CONDA}}
        response = self.call("PUT", f"{workspace}/environments/minimal/versions/1", environment)
        assert response.status_code == 201, response.text
        return {
            "environmentId": "azureml:minimal:1",
            "codeConfiguration": {"codeId": "azureml:echo:1", "scoringScript": "score.py"},
        }

    def container_client(self, sas_uri: str, **kwargs):
        """An azure-storage-blob ContainerClient for a Weir SAS URI (directory or container)."""
        from azure.storage.blob import ContainerClient

        parts = urlsplit(sas_uri)
        account, container = parts.path.lstrip("/").split("/")[:2]
        return ContainerClient(
            f"{parts.scheme}://{parts.netloc}/{account}",
            container,
            credential=parts.query,
            connection_verify=self.ca_bundle,
            **kwargs,
        )

    def replicas(self, deployment_name: str) -> list[str]:
        """Addresses of the ready replicas of the (only) deployment with that name."""
        status = self.agent_status(deployment_name)
        return [r["address"] for r in status["replicas"] if r["state"] == "ready"]

    def agent_status(self, deployment_name: str) -> dict:
        """What the agent reports for the deployment with that name in this subscription."""
        (deployment_id,) = self.sql(
            "SELECT d.id FROM weir_onlinedeployment d JOIN weir_onlineendpoint e"
            " ON d.endpoint_id = e.id JOIN weir_workspace w ON e.workspace_id = w.id"
            " WHERE d.name = %s AND w.subscription_id = %s",
            deployment_name,
            self.subscription,
        )[0]
        status_file = Path(self.env["WEIR_DATA_DIR"]) / "agent" / "status" / f"{deployment_id}.json"
        return json.loads(status_file.read_text())

    def sql(self, query: str, *params):
        with psycopg.connect(self.env["DATABASE_URL"], autocommit=True) as conn:
            return conn.execute(query, params).fetchall()


def cli_runner(stack: Stack, tmp_path: Path, cwd: Path):
    """``run(*args)``: the CLI run as a user would, in ``cwd``, configured by environment
    variables; ``run.json(*args)`` parses what it prints."""
    env = {
        **stack.env,
        # This checkout's CLI, whatever an editable install elsewhere maps `cli` to.
        "PYTHONPATH": str(ROOT),
        "WEIR_CLI_CONFIG": str(tmp_path / "cli-config"),
        "WEIR_URL": stack.base_url,
        "WEIR_TOKEN": stack.token,
        "WEIR_CA_BUNDLE": stack.ca_bundle,
        "WEIR_SUBSCRIPTION": stack.subscription,
        "WEIR_GROUP": "rg1",
        "WEIR_WORKSPACE": stack.workspace_name,
    }

    def run(*args: str, check: bool = True, cwd: Path = cwd) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, "-m", "cli", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if check:
            assert done.returncode == 0, f"weir {' '.join(args)}: {done.stderr}"
        return done

    def json_of(*args: str):
        return json.loads(run(*args).stdout)

    run.json = json_of
    run.env = env
    return run


def _recreate_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _wait_until_serving(url: str, ca: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        try:
            requests.get(f"{url}/healthz", verify=ca, timeout=2)
            return  # any answer over TLS means the server is up
        except (requests.ConnectionError, OSError):
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not start within 60s")


@contextmanager
def running_stack(data_dir: Path, database: str, redis_url: str, **settings):
    """Start the stack (migrations, API and blob servers, workers, agent, router) on a fresh
    ``database`` and the Redis db ``redis_url`` names (flushed), with ``settings`` added to
    its environment; stop it on exit. Each process logs to a file in ``data_dir``."""
    base_db = os.environ.get("DATABASE_URL", "postgres://localhost/weir")
    database_url = base_db.rsplit("/", 1)[0] + f"/{database}"
    _recreate_database(database_url)
    redis.Redis.from_url(redis_url).flushdb()
    env = {
        # Results go to the stack's own Redis db (the broker's), whatever this shell says.
        **{k: v for k, v in os.environ.items() if k != "CELERY_RESULT_BACKEND"},
        "DJANGO_SETTINGS_MODULE": "controlplane.settings",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": redis_url,
        # The routing table is in the broker's db, whatever the calling shell exports.
        "WEIR_ROUTING_REDIS_URL": redis_url,
        "WEIR_REDIS_PASSWORD": "",
        "WEIR_DATA_DIR": str(data_dir),
        "WEIR_RETRY_AFTER": "1",
        "WEIR_RECONCILE_INTERVAL": "1",
        # Scoring metrics are collected once their minute is complete: soon after, here.
        "WEIR_METRICS_COLLECT_INTERVAL": "2",
        "WEIR_OPERATION_LEASE_SECONDS": "5",
        # The router's autoscaler removes replicas after this much low load (default 60 s).
        "WEIR_SCALE_DOWN_DELAY": "3",
        # Two serving processes whatever the machine's cores: what is shared between them
        # (request slots, quotas) is then always exercised.
        "WEIR_ROUTER_PROCESSES": "2",
        # Small enough for a test to exceed; the 9 MB test file goes up in 4 MB blocks.
        "WEIR_BLOB_MAX_UPLOAD": str(16 * 1024 * 1024),
        "PYTHONUNBUFFERED": "1",
        **settings,
    }
    manage = [sys.executable, "manage.py"]
    subprocess.run(
        [*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    token = subprocess.run(
        [*manage, "create_api_token", "system-tests", "--days", "1"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    port, blob_port, router_port, metrics_port = (free_port() for _ in range(4))
    env["WEIR_BLOB_URL"] = f"https://localhost:{blob_port}"
    env["WEIR_SCORING_PORT"] = str(router_port)
    server_log = open(data_dir / "server.log", "ab")  # noqa: SIM115
    servers = [
        subprocess.Popen(
            [*manage, "serve", *flags],
            cwd=ROOT,
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
        for flags in (
            ["--bind", f"127.0.0.1:{port}"],
            ["--blob", "--bind", f"127.0.0.1:{blob_port}"],
        )
    ]
    ca = str(data_dir / "tls" / "server.crt")
    base_url = f"https://localhost:{port}"
    deadline = time.monotonic() + 30
    while not Path(ca).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    _wait_until_serving(base_url, ca, servers[0])
    _wait_until_serving(env["WEIR_BLOB_URL"], ca, servers[1])
    stack = Stack(
        env=env,
        base_url=base_url,
        ca_bundle=ca,
        token=token,
        blob_url=env["WEIR_BLOB_URL"],
        servers=servers,
    )
    stack.start_worker()
    agent_log = open(data_dir / "agent.log", "ab")  # noqa: SIM115
    agent = subprocess.Popen(
        [sys.executable, "-m", "dataplane.agent"],
        cwd=ROOT,
        env=env,
        stdout=agent_log,
        stderr=subprocess.STDOUT,
    )
    router_log = open(data_dir / "router.log", "ab")  # noqa: SIM115
    router = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dataplane.router",
            "--port",
            str(router_port),
            "--metrics-port",
            str(metrics_port),
        ],
        cwd=ROOT,
        env=env,
        stdout=router_log,
        stderr=subprocess.STDOUT,
    )
    stack.router_url = f"http://127.0.0.1:{router_port}"
    stack.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    stack.others = [agent, router]
    try:
        yield stack
    finally:
        router.send_signal(signal.SIGTERM)
        router.wait(timeout=30)
        router_log.close()
        stack.stop_worker()
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=60)
        agent_log.close()
        for server in servers:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        server_log.close()


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("weir-system")
    with running_stack(data_dir, DATABASE, f"redis://127.0.0.1:6379/{REDIS_DB}") as stack:
        yield stack


@pytest.fixture(scope="session")
def models():
    """The example scikit-learn models (examples/make_models.py): name -> model folder."""
    sys.path.insert(0, str(ROOT / "examples"))
    import make_models

    return make_models.make()


@pytest.fixture(scope="session")
def mlflow_model(tmp_path_factory) -> Path:
    """An MLflow model folder (tests/mlflow_models.py), saved once: the tests that deploy it
    share the environment its requirements make, built once per session."""
    from tests.mlflow_models import save_diabetes_model

    return save_diabetes_model(tmp_path_factory.mktemp("mlflow") / "model")


@pytest.fixture
def workspace(stack):
    """A fresh subscription and workspace per test, so tests never see each other's data."""
    stack.subscription = str(uuid.uuid4())
    # Scoring hosts ({endpoint}.{workspace}.localhost) are unique across the installation.
    stack.workspace_name = f"ws-{uuid.uuid4().hex[:8]}"
    response = stack.call("PUT", stack.ws(), {"location": "local"})
    assert response.status_code == 201, response.text
    return stack.ws()


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's /usr/bin/chromium) through Playwright's sync API, one per
    test module (it starts in about a second); each test opens contexts of its own in it.

    Not one per session: while Playwright's sync API is open, its event loop counts as running
    in the test process's thread, so asyncio.run() fails and Django's ORM raises
    SynchronousOnlyOperation in every test collected after it until the browser closes."""
    with launched_browser() as browser:
        yield browser


@pytest.fixture
def signed_in(stack, browser):
    """``signed_in(role=None, scope="/", *, name=None, person=None, next_url="/auth/session")``:
    a Playwright Page in a fresh browser context, signed in through the form at /auth/login as
    ``person``, or else as a new local user (``name``, or a unique one) holding ``role`` at
    ``scope`` when a role is given. The contexts are closed after the test."""
    contexts = []

    def sign_in_as(
        role: str | None = None,
        scope: str = "/",
        *,
        name: str | None = None,
        person: Person | None = None,
        next_url: str = "/auth/session",
    ):
        person = person or make_person(stack, name, role=role, scope=scope)
        page = sign_in(stack, browser, person, next_url)
        contexts.append(page.context)
        return page

    yield sign_in_as
    for context in contexts:
        context.close()


# A scoring script that answers with the deployment's name (its WHO variable).
WHO = b"import os\ndef init():\n    pass\n\ndef run(raw):\n    return {'who': os.environ['WHO']}\n"


@pytest.fixture
def routed_endpoint(stack, workspace):
    """An endpoint with two one-replica deployments, blue and green, answering who they are."""
    runtime = stack.register_runtime(workspace)
    code_uri = stack.upload(workspace, {"score.py": WHO}, "codes")
    stack.call("PUT", f"{workspace}/codes/who/versions/1", {"properties": {"codeUri": code_uri}})
    runtime["codeConfiguration"]["codeId"] = "azureml:who:1"
    path = f"{workspace}/onlineEndpoints/routed"
    created = stack.call("PUT", path, {"location": "local", "properties": {"authMode": "Key"}})
    stack.wait_for_status(created.headers["Azure-AsyncOperation"])
    for name in ("blue", "green"):
        body = {
            "location": "local",
            "sku": {"name": "Default", "capacity": 1},
            "properties": {
                "endpointComputeType": "Managed",
                **runtime,
                "environmentVariables": {"WHO": name},
            },
        }
        response = stack.call("PUT", f"{path}/deployments/{name}", body)
        assert (
            stack.wait_for_status(response.headers["Azure-AsyncOperation"], 120)["status"]
            == "Succeeded"
        )
    return path
