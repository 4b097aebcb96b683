"""How fast the local agent brings a replica back: a real agent runs one replica of a
scoring script whose init() takes a second; the replica is SIGKILLed several times, and each
time the seconds until the agent reports it ready again are measured (the restart backoff,
the interpreter's start, init(), and the readiness probes at the start-up cadence). Then the
same replica is started beside one that accepts and never answers, and the seconds from its
spec to ready are reported with and without that neighbour.

    python bench/agent.py [--kills 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dataplane.agent.spec import DeploymentSpec, Probe, StateDir  # noqa: E402

# init() takes a second, as loading a small model does.
ECHO = "import time\n\ndef init():\n    time.sleep(1.0)\n\ndef run(data):\n    return data\n"
HUNG = (
    "import socket, sys\n"
    "server = socket.socket(socket.AF_UNIX)\nserver.bind(sys.argv[1])\nserver.listen()\n"
    "held = []\nwhile True:\n    held.append(server.accept()[0])\n"
)


def spec(deployment_id: str, command: list[str], readiness: Probe) -> DeploymentSpec:
    return DeploymentSpec(
        id=deployment_id,
        revision="rev1",
        generation="g1",
        replicas=1,
        command=command,
        cwd=str(ROOT),
        liveness=Probe(initial_delay=300.0),
        readiness=readiness,
    )


def ready(state: StateDir, deployment_id: str, exclude: set[int], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = state.read_status(deployment_id) or {"replicas": []}
        for replica in status["replicas"]:
            if replica["state"] == "ready" and replica["pid"] not in exclude:
                return replica
        time.sleep(0.01)
    raise SystemExit(f"{deployment_id} was not ready within {timeout:.0f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="weir-bench-agent-") as tmp:
        root = Path(tmp)
        (root / "score.py").write_text(ECHO)
        (root / "hung.py").write_text(HUNG)
        server = [sys.executable, "-m", "dataplane.inference", "--entry-script"]
        echo = [*server, str(root / "score.py"), "--socket", "{socket}"]
        state = StateDir(root / "agent")
        agent = subprocess.Popen(
            [sys.executable, "-m", "dataplane.agent"],
            cwd=ROOT,
            env={**os.environ, "WEIR_AGENT_DIR": str(state.root)},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            state.put_spec(spec("echo", echo, Probe(period=10.0)))
            replica = ready(state, "echo", set())
            seen, restarts = {replica["pid"]}, []
            for _ in range(args.kills):
                killed = time.monotonic()
                os.kill(replica["pid"], signal.SIGKILL)
                replica = ready(state, "echo", seen)
                restarts.append(time.monotonic() - killed)
                seen.add(replica["pid"])
            state.remove_spec("echo")
            figures = ", ".join(f"{seconds:.2f}" for seconds in restarts)
            print(
                f"SIGKILL to ready again (readiness period 10 s), kill by kill: {figures} s"
                " (the first restart is at once, then the backoff doubles from 1 s)"
            )

            alone = started_ready(state, "alone", echo)
            hung = [sys.executable, str(root / "hung.py"), "{socket}"]
            state.put_spec(spec("hung", hung, Probe(period=1.0, timeout=60.0)))
            time.sleep(1.0)  # its first probe is hanging now
            beside = started_ready(state, "beside", echo)
            print(
                f"spec to ready: {alone:.2f} s alone, {beside:.2f} s beside a replica whose"
                " probe hangs for 60 s"
            )
        finally:
            agent.send_signal(signal.SIGTERM)
            agent.wait(timeout=120)


def started_ready(state: StateDir, deployment_id: str, command: list[str]) -> float:
    started = time.monotonic()
    state.put_spec(spec(deployment_id, command, Probe(period=10.0)))
    ready(state, deployment_id, set())
    return time.monotonic() - started


if __name__ == "__main__":
    main()
