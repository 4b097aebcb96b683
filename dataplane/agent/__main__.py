"""``python -m dataplane.agent``: run the local backend's supervisor until SIGTERM/SIGINT.

Its state directory is ``$WEIR_AGENT_DIR`` (default ``$WEIR_DATA_DIR/agent``, and
``./data/agent`` without either).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path

from dataplane.agent.spec import StateDir
from dataplane.agent.supervisor import Supervisor

TICK = 0.2

log = logging.getLogger("weir.agent")


def state_dir() -> Path:
    if explicit := os.environ.get("WEIR_AGENT_DIR"):
        return Path(explicit)
    return Path(os.environ.get("WEIR_DATA_DIR", "data")) / "agent"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    supervisor = Supervisor(StateDir(state_dir()))
    log.info("agent supervising %s", supervisor.state.root)
    while not stop.is_set():
        supervisor.tick()
        stop.wait(TICK)
    log.info("stopping every replica")
    supervisor.shutdown()


if __name__ == "__main__":
    main()
