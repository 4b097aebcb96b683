"""The agent's hold on its replicas, on real processes: reachable only through their sockets,
never outliving the agent, probed concurrently, drained before they are stopped."""

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from dataplane.agent.address import socket_path
from dataplane.agent.spec import DeploymentSpec, Probe, StateDir
from dataplane.agent.supervisor import DRAIN, STOP_GRACE, record_process, stop_grace
from tests import replica_client
from tests.dataplane.conftest import ROOT
from tests.dataplane.test_agent import alive, wait_for

ECHO = "def init():\n    pass\n\ndef run(data):\n    return {'echo': data}\n"


@pytest.fixture
def state(tmp_path):
    """A state directory whose parents anyone may traverse, so that the sockets directory's
    own mode is what keeps other users out."""
    root = Path(tempfile.mkdtemp(prefix="weir-agent-", dir="/tmp"))
    root.chmod(0o755)
    (root / "score.py").write_text(ECHO)
    yield StateDir(root / "agent")
    for pid in replicas_under(root):  # only if a test failed half-way
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(root, ignore_errors=True)


class Agents:
    """Agents started on one state directory, each in its own process group."""

    def __init__(self, state: StateDir):
        self.state = state
        self.started: list[subprocess.Popen] = []

    def start(self) -> subprocess.Popen:
        log = open(self.state.root.parent / f"agent-{len(self.started)}.log", "wb")  # noqa: SIM115
        process = subprocess.Popen(
            [sys.executable, "-m", "dataplane.agent"],
            cwd=ROOT,
            env={**os.environ, "WEIR_AGENT_DIR": str(self.state.root)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.started.append(process)
        return process


@pytest.fixture
def agents(state):
    agents = Agents(state)
    yield agents
    for process in agents.started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)


def deployment(
    state: StateDir,
    replicas: int = 1,
    deployment_id: str = "dep1",
    command: list[str] | None = None,
    **settings,
) -> DeploymentSpec:
    script = state.root.parent / "score.py"
    settings = {
        "liveness": Probe(initial_delay=10.0, period=1.0, failure_threshold=3),
        "readiness": Probe(period=1.0),
        **settings,
    }
    return DeploymentSpec(
        id=deployment_id,
        revision="rev1",
        generation="g1",
        replicas=replicas,
        command=command or server(script),
        cwd=str(ROOT),
        **settings,
    )


def server(script: Path) -> list[str]:
    return [sys.executable, "-m", "dataplane.inference", "--entry-script", str(script)] + [
        "--socket",
        "{socket}",
    ]


def ready_replica(state: StateDir, deployment_id: str = "dep1", timeout: float = 60) -> dict:
    status = wait_for_deployment(state, deployment_id, lambda s: s["ready"] >= 1, timeout)
    return next(r for r in status["replicas"] if r["state"] == "ready")


def wait_for_deployment(state, deployment_id, condition, timeout=60):
    if deployment_id == "dep1":
        return wait_for(state, condition, timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = state.read_status(deployment_id)
        if status and condition(status):
            return status
        time.sleep(0.05)
    raise AssertionError(f"{deployment_id}: condition not met; last status: {status}")


def replicas_under(root: Path) -> list[int]:
    """Every process whose command line names a path under ``root`` (replicas name their
    socket; agents name nothing under it)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
                state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if str(root).encode() in command and state != "Z":
                found.append(int(entry))
    return found


def gone(pids, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(map(alive, pids)):
            return True
        time.sleep(0.05)
    return False


def listening_tcp_inodes(pid: int) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                inodes.add(fields[9])
    return inodes


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def unix_listening_inode(path: str) -> str | None:
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[7] == path:
            return fields[6]
    return None


def as_nobody(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_replica_is_reachable_only_through_its_private_socket(state, agents):
    agents.start()
    state.put_spec(deployment(state))
    replica = ready_replica(state)
    path = socket_path(replica["address"])
    assert path and Path(path).parent == state.sockets.resolve()

    # No TCP socket of the replica (or of a process it started) listens.
    group = [
        p for p in map(int, filter(str.isdigit, os.listdir("/proc"))) if _pgrp(p) == replica["pid"]
    ]
    assert replica["pid"] in group
    listening = listening_tcp_inodes(replica["pid"])
    for pid in group:
        assert not socket_inodes(pid) & listening, f"process {pid} listens on TCP"
    # What it does listen on is its socket, in a directory only this user may open.
    assert unix_listening_inode(path) in socket_inodes(replica["pid"])
    assert stat.S_IMODE(state.sockets.stat().st_mode) == 0o700
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    connect = "import socket, sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])"
    refused = as_nobody(connect, path)
    assert refused.returncode != 0 and "PermissionError" in refused.stderr, refused
    # The state directory itself is open to that user: the sockets directory is the lock.
    assert as_nobody("import os, sys; os.listdir(sys.argv[1])", str(state.root)).returncode == 0

    assert replica_client.post(replica["address"], data="hi").json() == {"echo": "hi"}


def _pgrp(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_no_replica_outlives_a_signal_to_the_agents_process_group(state, agents, signum):
    agent = agents.start()
    state.put_spec(deployment(state, replicas=2))
    status = wait_for(state, lambda s: s["ready"] == 2)
    pids = [r["pid"] for r in status["replicas"]]

    os.killpg(agent.pid, signum)  # the replicas are in process groups of their own
    agent.wait(timeout=60)
    assert gone(pids), f"replicas {pids} outlived the agent ({signum!r})"
    assert replicas_under(state.root.parent) == []

    # A new agent on the same directory serves again (once it has reported afresh).
    agents.start()
    status = wait_for(
        state, lambda s: s["ready"] >= 1 and not {r["pid"] for r in s["replicas"]} & set(pids)
    )
    replica = next(r for r in status["replicas"] if r["state"] == "ready")
    assert replica_client.post(replica["address"], data="again").json() == {"echo": "again"}


def test_replicas_die_with_an_agent_killed_outright(state, agents):
    agent = agents.start()
    state.put_spec(deployment(state))
    pid = ready_replica(state)["pid"]
    os.kill(agent.pid, signal.SIGKILL)
    agent.wait(timeout=30)
    # No agent runs now: only the parent-death signal can stop the replica.
    assert gone([pid]), "the replica outlived its agent"


def test_a_replica_a_previous_agent_left_is_stopped_when_an_agent_starts(state, agents):
    # A replica process group the new agent did not start, recorded as a previous agent
    # would have recorded it.
    state.sockets.mkdir(parents=True, mode=0o700)
    left_socket = state.sockets / "left-1.sock"
    script = state.root.parent / "score.py"
    left = subprocess.Popen(
        [*server(script)[:-1], str(left_socket)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 30
    while not left_socket.exists():
        assert time.monotonic() < deadline and left.poll() is None, "the replica did not start"
        time.sleep(0.05)
    state.processes.mkdir(parents=True, exist_ok=True)
    record_process(state, left.pid, deployment="dep1", replica="left-1", grace=10.0)

    agents.start()
    assert left.wait(timeout=30) is not None  # stopped by the new agent
    record = state.processes / f"{left.pid}.json"
    deadline = time.monotonic() + 10
    while record.exists() or left_socket.exists():  # forgotten once swept
        assert time.monotonic() < deadline, "the record or the socket is left"
        time.sleep(0.05)
    # The agent goes on to serve the specs as usual.
    state.put_spec(deployment(state))
    replica = ready_replica(state)
    assert replica_client.post(replica["address"], data="x").json() == {"echo": "x"}


HUNG = """
import socket, sys, time
server = socket.socket(socket.AF_UNIX)
server.bind(sys.argv[1])
server.listen()
held = []
while True:
    connection, _ = server.accept()
    held.append(connection)  # accepted, never answered
    print("accepted", flush=True)
"""


def test_a_hung_replica_does_not_delay_another_becoming_ready(state, agents, tmp_path):
    hung_script = tmp_path / "hung.py"
    hung_script.write_text(HUNG)
    agents.start()
    # Its probes wait this long for an answer that never comes; were probes taken one after
    # the other, the other replica would wait as long.
    hung = deployment(
        state,
        deployment_id="hung",
        command=[sys.executable, str(hung_script), "{socket}"],
        readiness=Probe(period=1.0, timeout=120.0),
        liveness=Probe(initial_delay=300.0),
    )
    state.put_spec(hung)
    hung_log = state.logs("hung")
    deadline = time.monotonic() + 30
    while "accepted" not in "".join(p.read_text() for p in hung_log.glob("*.log")):
        assert time.monotonic() < deadline, "the hung replica was never probed"
        time.sleep(0.05)

    started = time.monotonic()
    state.put_spec(deployment(state))
    replica = ready_replica(state, timeout=60)
    print(f"ready {time.monotonic() - started:.2f} s after its spec, beside a hung replica")
    assert replica_client.post(replica["address"], data="x").json() == {"echo": "x"}
    assert state.read_status("hung")["replicas"][0]["state"] == "starting"


WARMING = """
import os, time
LOG = os.environ["PROBE_LOG"]
started = None

def init():
    global started
    started = time.monotonic()

def run(data):
    with open(LOG, "a") as log:
        log.write(f"{os.getpid()} {time.monotonic()}\\n")
    if time.monotonic() - started < 1.0:
        raise RuntimeError("warming up")
    return "ok"
"""


def test_a_killed_replica_is_probed_at_the_start_up_cadence_until_ready(state, agents, tmp_path):
    script, probe_log = tmp_path / "warming.py", tmp_path / "probes.log"
    script.write_text(WARMING)
    agents.start()
    spec = deployment(
        state,
        command=server(script),
        env={"PROBE_LOG": str(probe_log)},
        # Readiness is run() itself, failing for a second after init(); every `period`
        # would be once a minute.
        readiness=Probe(path="/score", period=60.0),
    )
    state.put_spec(spec)
    pid = ready_replica(state)["pid"]

    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    status = wait_for(state, lambda s: s["ready"] == 1 and s["replicas"][0]["restarts"] >= 1)
    ready_again = time.monotonic() - killed
    replica = status["replicas"][0]
    probes = [
        float(line.split()[1])
        for line in probe_log.read_text().splitlines()
        if int(line.split()[0]) == replica["pid"]
    ]
    gaps = [b - a for a, b in zip(probes, probes[1:], strict=False)]
    print(
        f"ready again {ready_again:.2f} s after SIGKILL; {len(probes)} readiness probes of the"
        f" restarted replica, {max(gaps):.2f} s apart at most"
    )
    # Probed several times while it warmed up, never a period apart.
    assert len(probes) >= 3 and max(gaps) < 10.0
    assert replica_client.post(replica["address"], data="x").json() == "ok"


def test_a_replica_scaled_in_is_reported_stopping_and_answers_until_its_drain_ends(state, agents):
    agents.start()
    state.put_spec(deployment(state, replicas=2, request_timeout=30.0))
    wait_for(state, lambda s: s["ready"] == 2)
    state.put_spec(deployment(state, replicas=1, request_timeout=30.0))
    status = wait_for(state, lambda s: any(r["state"] == "stopping" for r in s["replicas"]))
    stopping = next(r for r in status["replicas"] if r["state"] == "stopping")
    seen = time.monotonic()
    answers = []
    # Not ready (the worker drops it from the route), yet still serving what reaches it.
    while time.monotonic() - seen < DRAIN / 2:
        answers.append(replica_client.post(stopping["address"], data="x").status_code)
        time.sleep(0.1)
    assert answers and set(answers) == {200}
    assert status["ready"] == 1
    assert gone([stopping["pid"]])
    status = wait_for(state, lambda s: len(s["replicas"]) == 1)
    assert status["replicas"][0]["state"] == "ready"


def test_a_stopping_replica_gets_at_least_the_request_timeout_before_sigkill(state):
    assert stop_grace(deployment(state, request_timeout=60.0)) == 61.0
    assert stop_grace(deployment(state)) == STOP_GRACE  # no less than the agent's floor
