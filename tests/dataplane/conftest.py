"""Start real inference server processes for the data-plane tests."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from dataplane.agent.supervisor import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "online"


@pytest.fixture(scope="session")
def models():
    sys.path.insert(0, str(ROOT / "examples"))
    import make_models

    return make_models.make()


class Replica:
    def __init__(self, script: Path, model_dir: Path, concurrency: int = 1, tmp: Path = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (tmp or Path("/tmp")) / f"replica-{self.port}.log"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dataplane.inference",
                "--entry-script",
                str(script),
                "--model-dir",
                str(model_dir),
                "--port",
                str(self.port),
                "--concurrency",
                str(concurrency),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=open(self.log, "wb"),  # noqa: SIM115
            text=True,
        )

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"replica exited {self.process.returncode}: {self.log_text()}")
            line = self.process.stdout.readline()
            if line.startswith("READY"):
                return
        raise RuntimeError("replica not ready")

    def log_text(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def replica(tmp_path):
    started = []

    def start(script: Path, model_dir: Path, concurrency: int = 1, wait: bool = True) -> Replica:
        replica = Replica(script, model_dir, concurrency, tmp_path)
        started.append(replica)
        if wait:
            replica.wait_ready()
        return replica

    yield start
    for replica in started:
        replica.stop()


# A scoring script that answers at once, or after "sleep:<seconds>".
SLOW = """import time

def init():
    pass

def run(raw):
    if raw.startswith('sleep:'):
        time.sleep(float(raw[6:]))
        return 'slept'
    return 'ok'
"""


def start_router(feed: str, processes: int = 2) -> tuple[subprocess.Popen, str]:
    """A real router of ``processes`` serving processes on the routing table in ``feed``,
    ready; and its URL. The caller terminates it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "dataplane.router", "--processes", str(processes)]
        + ["--port", str(port), "--redis-url", feed, "--access-log", "off"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout.readline().startswith("READY")
    return process, f"http://127.0.0.1:{port}"
