"""``python -m dataplane.agent``: run the local backend's supervisor until SIGTERM, SIGINT
or SIGHUP, then stop every replica. Replicas get SIGTERM should the agent die outright, and
an agent starting stops any a previous one left.

Its state directory is ``$WEIR_AGENT_DIR`` (default ``$WEIR_DATA_DIR/agent``, and
``./data/agent`` without either). It touches ``heartbeat`` there every second;
``python -m dataplane.agent --healthcheck`` exits 0 while that is fresh (for container
healthchecks).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from dataplane.agent.spec import StateDir
from dataplane.agent.supervisor import STARTUP_PROBE_INTERVAL, ReplicaSupervisor

TICK = 0.2
# Between ticks, how often the agent looks whether a spec changed (one stat): a scale from
# zero starts its replica within this, not within a tick.
SPEC_POLL = 0.02
HEARTBEAT = "heartbeat"
# A heartbeat older than this means the agent is stuck or gone.
HEARTBEAT_STALE = 10.0

log = logging.getLogger("weir.agent")


def state_dir() -> Path:
    if explicit := os.environ.get("WEIR_AGENT_DIR"):
        return Path(explicit)
    return Path(os.environ.get("WEIR_DATA_DIR", "data")) / "agent"


def healthy() -> bool:
    try:
        return time.time() - (state_dir() / HEARTBEAT).stat().st_mtime < HEARTBEAT_STALE
    except OSError:
        return False


def main() -> None:
    if "--healthcheck" in sys.argv[1:]:
        sys.exit(0 if healthy() else 1)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = threading.Event()
    supervisor = ReplicaSupervisor(StateDir(state_dir()))

    def asked_to_stop(*_):
        stop.set()
        supervisor.wakeup.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, asked_to_stop)
    log.info("agent supervising %s", supervisor.state.root)
    supervisor.prepare()
    heartbeat, beaten = supervisor.state.root / HEARTBEAT, 0.0
    while not stop.is_set():
        supervisor.wakeup.clear()
        version = supervisor.state.specs_version()
        supervisor.tick()
        if time.monotonic() - beaten >= 1.0:
            heartbeat.touch()
            beaten = time.monotonic()
        # A finished probe of a starting replica, or a changed spec, wakes the loop early.
        # A starting replica is probed every STARTUP_PROBE_INTERVAL: tick as often.
        next_tick = time.monotonic() + (STARTUP_PROBE_INTERVAL if supervisor.starting() else TICK)
        while not supervisor.wakeup.wait(SPEC_POLL) and time.monotonic() < next_tick:
            if supervisor.state.specs_version() != version:
                break
    log.info("stopping every replica")
    supervisor.shutdown()


if __name__ == "__main__":
    main()
