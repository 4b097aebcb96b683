"""The stack on a Redis that requires a password: the password (in a Redis URL, or in
WEIR_REDIS_PASSWORD for a URL that has none) reaches every connection (broker, result
backend, routing table, its change notifications, load reports, the autoscaler's lease and
decisions), Redis refuses a client without it, and it appears in no log and no command line."""

import secrets
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
import requests

from dataplane.agent.supervisor import free_port
from tests.system.conftest import DATABASE, running_stack
from tests.system.test_router import endpoint, eventually, score, set_traffic  # noqa: F401

pytestmark = pytest.mark.system

# Characters a URL must escape, so the test sees the password decoded where it is used.
PASSWORD = f"{secrets.token_hex(12)}/%@:{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory):
    """A Redis of the test's own, requiring PASSWORD (read from stdin, not argv)."""
    port = free_port()
    config = f'port {port}\nbind 127.0.0.1\nrequirepass "{PASSWORD}"\nsave ""\nappendonly no\n'
    server = subprocess.Popen(
        ["redis-server", "-", "--dir", str(tmp_path_factory.mktemp("redis"))],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    server.stdin.write(config.encode())
    server.stdin.close()
    client = redis.Redis(port=port, password=PASSWORD)
    assert eventually(lambda: _answers(client), timeout=10), "redis-server did not start"
    yield port
    server.terminate()
    server.wait(timeout=10)


def _at_max_recorded(stack) -> bool:
    return bool(stack.sql("SELECT 1 FROM weir_scaleevent WHERE action = 'AtMaxInstances'"))


def _answers(client) -> bool:
    try:
        return client.ping()
    except redis.ConnectionError:
        return False


@pytest.fixture(scope="module")
def stack(redis_port, tmp_path_factory):
    """The whole stack (conftest.running_stack) on that Redis. The routing table's URL
    carries the password; the broker's does not, and gets it from WEIR_REDIS_PASSWORD (which
    Celery, reading its URL from the environment first, would otherwise miss)."""
    url = f"redis://:{quote(PASSWORD, safe='')}@127.0.0.1:{redis_port}/0"
    data_dir = tmp_path_factory.mktemp("weir-redis-password")
    settings = {
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
        "WEIR_REDIS_PASSWORD": PASSWORD,
    }
    with running_stack(data_dir, f"{DATABASE}_password", url, **settings) as stack:
        yield stack


def test_the_stack_serves_from_a_redis_with_a_password(stack, endpoint, redis_port):  # noqa: F811
    set_traffic(stack, endpoint, {"blue": 100, "green": 0})
    scoring_uri = stack.call("GET", endpoint).json()["properties"]["scoringUri"]
    key = stack.call("POST", f"{endpoint}/listKeys").json()["primaryKey"]

    def served_by(name):
        response = score(stack, scoring_uri, key)
        return response.status_code == 200 and response.headers["azureml-model-deployment"] == name

    assert eventually(lambda: served_by("blue")), "the router never served the endpoint"
    # The router follows a traffic change: the notification and the entry come through the
    # password-protected feed.
    set_traffic(stack, endpoint, {"blue": 0, "green": 100})
    assert eventually(lambda: served_by("green"), timeout=5)
    assert all(served_by("green") for _ in range(10))

    # getLogs goes through the broker and waits on the result backend.
    logs = stack.call("POST", f"{endpoint}/deployments/green/getLogs", {"tail": 5})
    assert logs.status_code == 200, logs.text

    # An autoscaled deployment: the router reports its load to this Redis, and under load
    # at maxInstances its autoscaler sends AtMaxInstances through the broker to a worker,
    # which records it.
    body = stack.call("GET", f"{endpoint}/deployments/green").json()
    body["properties"]["scaleSettings"] = {
        "scaleType": "TargetUtilization",
        "minInstances": 1,
        "maxInstances": 1,
        "pollingInterval": "PT1S",
        "targetUtilizationPercentage": 50,
    }
    body["properties"].pop("provisioningState", None)
    response = stack.call("PUT", f"{endpoint}/deployments/green", body)
    assert response.status_code in (200, 201), response.text
    assert stack.wait_for_status(response.headers["Azure-AsyncOperation"], 120)["status"] == (
        "Succeeded"
    )
    authorized = redis.Redis(port=redis_port, password=PASSWORD)
    reported = False
    with ThreadPoolExecutor(4) as pool:
        deadline = time.monotonic() + 20
        while not _at_max_recorded(stack) and time.monotonic() < deadline:
            list(pool.map(lambda _: score(stack, scoring_uri, key), range(40)))
            reported = reported or bool(authorized.keys("weir:load:*"))
    assert reported, "the router's load reports never reached Redis"
    assert _at_max_recorded(stack), "no AtMaxInstances event came through the broker"

    # Without the password, this Redis refuses.
    with pytest.raises(redis.AuthenticationError, match="NOAUTH|Authentication required"):
        redis.Redis(port=redis_port).get("weir:routes")
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=redis_port, password="not-it").ping()
    assert requests.get(f"{stack.router_url}/healthz", timeout=5).status_code == 200


def test_the_password_is_in_no_log_and_no_command_line(stack, endpoint):  # noqa: F811
    secrets_seen = {PASSWORD.encode(), quote(PASSWORD, safe="").encode()}
    data_dir = Path(stack.env["WEIR_DATA_DIR"])
    # Every file the stack wrote but the environments it built (and their caches).
    logs = [p for p in _files(data_dir) if p.stat().st_size < 64 * 1024 * 1024]
    assert {"server.log", "worker.log", "agent.log", "router.log"} <= {p.name for p in logs}
    for path in logs:
        content = path.read_bytes()
        for secret in secrets_seen:
            assert secret not in content, f"the Redis password is in {path}"
    # Celery names its broker with the password masked.
    assert b"redis://:**@127.0.0.1" in (data_dir / "worker.log").read_bytes()

    roots = [p.pid for p in stack.servers + stack.workers + stack.others]
    processes = _descendants(roots)
    assert len(processes) > len(roots)
    for pid in processes:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        for secret in secrets_seen:
            assert secret not in cmdline, f"the Redis password is on {cmdline!r}"


def _files(directory: Path):
    for path in directory.iterdir():
        if path.is_dir() and not path.is_symlink():
            if path.name not in ("envs", "uv-cache"):
                yield from _files(path)
        elif path.is_file():
            yield path


def _descendants(roots: list[int]) -> set[int]:
    """The processes ``roots`` and every process started under them (by /proc's ppid)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = set(), list(roots)
    while queue:
        pid = queue.pop()
        if pid not in found:
            found.add(pid)
            queue.extend(children.get(pid, []))
    return found
