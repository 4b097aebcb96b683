"""bin/start stopped by a signal to its whole process group (Ctrl-C, SIGTERM, a hangup, or
SIGKILL) leaves no process behind, and starts again on the same data directory: the agent
then serves its deployments afresh, sweeping whatever a killed one left."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from dataplane.agent.spec import DeploymentSpec, Probe, StateDir
from tests import replica_client
from tests.system.conftest import ROOT, free_port

pytestmark = [
    pytest.mark.system,
    # The API's and the blob store's certificates are only checked for an answer.
    pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning"),
]

DATABASE = os.environ.get("WEIR_START_TEST_DATABASE", "weir_start_test")
REDIS_DB = int(os.environ.get("WEIR_START_TEST_REDIS_DB", "12"))
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL)


def processes_of(data_dir: Path, session: int) -> list[str]:
    """Every process bin/start started: those in its session (it runs in one of its own),
    those that inherited its WEIR_DATA_DIR (should one have left the session), and replicas,
    which run in sessions of their own and name their socket under the data directory."""
    marker, found = str(data_dir).encode(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ours = (
            int(fields[3]) == session or b"WEIR_DATA_DIR=" + marker in environ or marker in command
        )
        if ours and fields[0] != "Z":
            found.append(f"{entry}: {command.decode(errors='replace')}")
    return found


def wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout:.0f}s")


def test_bin_start_stopped_by_a_signal_to_its_process_group_leaves_nothing(tmp_path):
    data = tmp_path / "data"
    base_db = os.environ.get("DATABASE_URL", "postgres://localhost/weir")
    broker = f"redis://127.0.0.1:6379/{REDIS_DB}"
    scoring = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": base_db.rsplit("/", 1)[0] + f"/{DATABASE}",
        "CELERY_BROKER_URL": broker,
        "WEIR_ROUTING_REDIS_URL": broker,
        "WEIR_DATA_DIR": str(data),
        "WEIR_BIND": f"127.0.0.1:{free_port()}",
        "WEIR_BLOB_BIND": f"127.0.0.1:{free_port()}",
        "WEIR_SCORING_PORT": str(scoring),
        "WEIR_CLI_CONFIG": str(tmp_path / "cli-config"),
    }
    env.pop("WEIR_AGENT_DIR", None)
    # A deployment the agent runs from its spec alone: no build, no API call needed.
    script = tmp_path / "score.py"
    script.write_text("def init():\n    pass\n\ndef run(data):\n    return {'echo': data}\n")
    state = StateDir(data / "agent")
    state.put_spec(
        DeploymentSpec(
            id="dep1",
            revision="rev1",
            generation="g1",
            replicas=2,
            command=[sys.executable, "-m", "dataplane.inference", "--entry-script", str(script)]
            + ["--socket", "{socket}"],
            cwd=str(ROOT),
            readiness=Probe(period=1.0),
        )
    )

    previous: set[int] = set()
    for signum in [
        getattr(signal, name) for name in os.environ.get("WEIR_START_TEST_SIGNALS", "").split()
    ] or SIGNALS:
        log = open(tmp_path / f"start-{signum.name}.log", "wb")  # noqa: SIM115
        start = subprocess.Popen(
            ["bin/start"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:

            def served(previous=previous):
                status = state.read_status("dep1") or {"replicas": []}
                ready = [r for r in status["replicas"] if r["state"] == "ready"]
                fresh = len(ready) == 2 and not {r["pid"] for r in ready} & previous
                return ready if fresh else None

            ready = wait(served, 300, "two replicas of the new agent were not ready")
            answer = replica_client.post(ready[0]["address"], data="hi")
            assert answer.json() == {"echo": "hi"}
            # Everything up: the router, the API and the blob store answer, and no process
            # has come or gone for three seconds (Celery's pool, gunicorn's workers).
            for url in (
                f"http://127.0.0.1:{scoring}/healthz",
                f"https://{env['WEIR_BIND']}/healthz",
                f"https://{env['WEIR_BLOB_BIND']}/",
            ):
                wait(lambda url=url: _answers(url), 120, f"{url} did not answer")
            _settled(data, start.pid)
            previous = {r["pid"] for r in ready}
            session = start.pid
            before = processes_of(data, session)
            os.killpg(session, signum)
            start.wait(timeout=180)
            stopped = time.monotonic()
            wait(
                lambda session=session: not processes_of(data, session),
                60,
                f"processes left after {signum.name}",
            )
            print(
                f"{signum.name}: {len(before)} processes, none left"
                f" {time.monotonic() - stopped:.2f} s after bin/start exited"
            )
        finally:
            if start.poll() is None:
                os.killpg(start.pid, signal.SIGKILL)
                start.wait()
            log.close()
            for line in processes_of(data, start.pid):  # only if the test failed
                os.kill(int(line.split(":")[0]), signal.SIGKILL)


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2, verify=False)
    except requests.RequestException:
        return False
    return True


def _settled(data: Path, session: int, quiet: float = 3.0, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    seen, since = None, time.monotonic()
    while time.monotonic() < deadline:
        now = sorted(processes_of(data, session))
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
        time.sleep(0.2)
    raise AssertionError("bin/start's processes did not settle")
