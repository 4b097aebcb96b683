"""The local agent as a real process supervising real inference-server replicas."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataplane.agent.spec import DeploymentSpec, Probe, StateDir
from tests import replica_client
from tests.dataplane.conftest import EXAMPLES, ROOT
from tests.dataplane.test_inference_server import SAMPLE, predictions

SCRIPT = EXAMPLES / "model-1" / "onlinescoring" / "score.py"


@pytest.fixture
def agent(tmp_path):
    state = StateDir(tmp_path / "agent")
    process = subprocess.Popen(
        [sys.executable, "-m", "dataplane.agent"],
        cwd=ROOT,
        env={**os.environ, "WEIR_AGENT_DIR": str(state.root), "WEIR_SECRET_FOR_TEST": "s3cret"},
        stdout=open(tmp_path / "agent.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    yield state
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)


def spec(
    model_dir: Path, replicas: int, revision: str = "rev1", script: Path = SCRIPT, generation="g1"
):
    return DeploymentSpec(
        id="dep1",
        revision=revision,
        generation=generation,
        replicas=replicas,
        command=[
            sys.executable,
            "-m",
            "dataplane.inference",
            "--entry-script",
            str(script),
            "--model-dir",
            str(model_dir),
            "--socket",
            "{socket}",
        ],
        cwd=str(ROOT),
        # The delay covers init() on a busy machine: liveness is not what these tests test.
        liveness=Probe(initial_delay=10.0, period=1.0, failure_threshold=3),
        readiness=Probe(period=1.0),
    )


def wait_for(state: StateDir, condition, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = state.read_status("dep1")
        if status and condition(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"condition not met; last status: {json.dumps(status, indent=1)}")


def ready_addresses(status: dict, revision: str) -> list[str]:
    return [
        r["address"]
        for r in status["replicas"]
        if r["state"] == "ready" and r["revision"] == revision
    ]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    )


def test_replicas_start_scale_roll_restart_and_stop(agent, models):
    v1, v2 = models["model-1"].parent, models["model-2"].parent
    agent.put_spec(spec(v1, 2))
    status = wait_for(agent, lambda s: s["ready"] == 2)
    for address in ready_addresses(status, "rev1"):
        answer = replica_client.post(address, json=SAMPLE).json()
        assert answer == pytest.approx(predictions(models["model-1"], SAMPLE["data"]))

    agent.put_spec(spec(v1, 3))
    status = wait_for(agent, lambda s: s["ready"] == 3 and len(s["replicas"]) == 3)
    agent.put_spec(spec(v1, 1))
    status = wait_for(agent, lambda s: len(s["replicas"]) == 1)
    survivor = status["replicas"][0]

    # A replica killed outright comes back and serves again.
    os.kill(survivor["pid"], signal.SIGKILL)
    status = wait_for(agent, lambda s: s["ready"] == 1 and s["replicas"][0]["restarts"] >= 1)
    address = ready_addresses(status, "rev1")[0]
    assert replica_client.post(address, json=SAMPLE).status_code == 200

    # Rolling update: the old replica serves until the new revision is ready.
    old_pid = status["replicas"][0]["pid"]
    agent.put_spec(spec(v2, 2, revision="rev2"))
    served_during_roll = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        current = agent.read_status("dep1")
        addresses = ready_addresses(current, current["revision"]) or ready_addresses(
            current, "rev1"
        )
        served_during_roll.append(replica_client.post(addresses[0], json=SAMPLE).status_code)
        if current["ready"] == 2 and all(r["revision"] == "rev2" for r in current["replicas"]):
            break
    assert set(served_during_roll) == {200}
    status = agent.read_status("dep1")
    for address in ready_addresses(status, "rev2"):
        answer = replica_client.post(address, json=SAMPLE).json()
        assert answer == pytest.approx(predictions(models["model-2"], SAMPLE["data"]))
    pids = [r["pid"] for r in status["replicas"]]

    agent.remove_spec("dep1")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (agent.status("dep1").exists() or any(map(alive, pids))):
        time.sleep(0.1)
    assert not agent.status("dep1").exists()
    assert not agent.logs("dep1").exists()
    assert not any(map(alive, [*pids, old_pid]))


def test_a_replica_whose_init_fails_is_reported_with_its_log(agent, tmp_path):
    script = tmp_path / "score.py"
    script.write_text(
        "def init():\n    raise RuntimeError('model file is missing')\ndef run(d):\n    pass\n"
    )
    agent.put_spec(spec(tmp_path, 1, script=script))
    status = wait_for(agent, lambda s: s["failure"] is not None, timeout=90)
    assert "model file is missing" in status["failure"]["logTail"]
    assert status["failure"]["exitCode"] != 0


def test_a_failed_revision_is_retried_by_a_new_generation(agent, tmp_path):
    script = tmp_path / "score.py"
    script.write_text("def init():\n    raise RuntimeError('not yet')\ndef run(d):\n    pass\n")
    agent.put_spec(spec(tmp_path, 1, script=script, generation="g1"))
    wait_for(agent, lambda s: s["failure"] is not None, timeout=90)
    script.write_text("def init():\n    pass\ndef run(d):\n    return d\n")
    agent.put_spec(spec(tmp_path, 1, script=script, generation="g2"))
    status = wait_for(agent, lambda s: s["failure"] is None and s["ready"] == 1)
    assert status["replicas"][0]["state"] == "ready"


def test_replicas_see_their_own_variables_not_the_agents(agent, tmp_path):
    script = tmp_path / "score.py"
    script.write_text(
        "import os\ndef init():\n    pass\n"
        "def run(d):\n    return {k: os.environ.get(k) for k in ('MINE', 'WEIR_SECRET_FOR_TEST')}\n"
    )
    deployment = spec(tmp_path, 1, script=script)
    deployment.env = {"MINE": "yes"}
    agent.put_spec(deployment)
    status = wait_for(agent, lambda s: s["ready"] == 1)
    address = ready_addresses(status, "rev1")[0]
    answer = replica_client.post(address, data="x").json()
    assert answer == {"MINE": "yes", "WEIR_SECRET_FOR_TEST": None}


def test_cpu_and_memory_limits_apply_to_the_replica(agent, tmp_path):
    script = tmp_path / "score.py"
    script.write_text(
        "import os, resource\ndef init():\n    pass\n"
        "def run(d):\n"
        "    return {'cpus': len(os.sched_getaffinity(0)),"
        " 'memory': resource.getrlimit(resource.RLIMIT_AS)[0]}\n"
    )
    deployment = spec(tmp_path, 1, script=script)
    deployment.cpu_limit = 1
    deployment.memory_limit_bytes = 2 * 1024**3
    agent.put_spec(deployment)
    status = wait_for(agent, lambda s: s["ready"] == 1)
    address = ready_addresses(status, "rev1")[0]
    answer = replica_client.post(address, data="x").json()
    assert answer == {"cpus": 1, "memory": 2 * 1024**3}


def test_the_healthcheck_follows_the_heartbeat(tmp_path):
    env = {**os.environ, "WEIR_AGENT_DIR": str(tmp_path / "agent")}
    check = [sys.executable, "-m", "dataplane.agent", "--healthcheck"]
    assert subprocess.run(check, cwd=ROOT, env=env).returncode == 1  # no agent ran here
    agent = subprocess.Popen(
        [sys.executable, "-m", "dataplane.agent"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(check, cwd=ROOT, env=env).returncode != 0:
            assert time.monotonic() < deadline, "the agent never reported healthy"
            time.sleep(0.2)
    finally:
        agent.terminate()
        agent.wait(timeout=30)
