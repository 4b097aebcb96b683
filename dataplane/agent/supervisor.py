"""The supervision loop: start, probe, restart and stop replica processes to match specs.

Replica states: ``starting`` (running, not yet ready), ``ready``, ``unready`` (was ready,
readiness failing), ``crashed`` (exited; restarts after a backoff), ``failed`` (exited
``MAX_START_FAILURES`` times without ever becoming ready: not restarted, reported), and
``stopping``.
"""

from __future__ import annotations

import http.client
import itertools
import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from collections import deque
from dataclasses import dataclass, field

from dataplane.agent.spec import DeploymentSpec, Probe, StateDir, write_json

log = logging.getLogger("weir.agent")

MAX_START_FAILURES = 3
MAX_BACKOFF = 30.0
STOP_GRACE = 10.0
# A replica being stopped is reported ``stopping`` (not ready) this long before it gets
# SIGTERM, so whoever routes by the status file stops sending it requests first.
DRAIN = 1.0
# Until a replica is first ready, readiness is probed this often (not every `period`), so a
# fresh replica serves as soon as it can.
STARTUP_PROBE_INTERVAL = 0.2
LOG_TAIL_LINES = 40
# The only variables a replica inherits from the agent: user code must not see the
# server's own settings or secrets.
INHERITED_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def probe_ok(port: int, probe: Probe) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=probe.timeout)
    try:
        connection.request("GET", probe.path)
        return 200 <= connection.getresponse().status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def tail(path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))
    except OSError:
        return ""


@dataclass
class Replica:
    name: str
    revision: str
    generation: str
    port: int
    log_path: str
    process: subprocess.Popen | None = None
    state: str = "starting"
    restarts: int = 0
    start_failures: int = 0
    exit_code: int | None = None
    started_at: float = 0.0
    ever_ready: bool = False
    ready_streak: int = 0
    ready_failures: int = 0
    live_failures: int = 0
    next_ready_probe: float = 0.0
    next_live_probe: float = 0.0
    restart_at: float = 0.0
    terminate_at: float = 0.0
    stop_deadline: float = 0.0
    log_file: object = field(default=None, repr=False)

    def report(self) -> dict:
        return {
            "name": self.name,
            "revision": self.revision,
            "address": f"127.0.0.1:{self.port}",
            "pid": self.process.pid if self.process else None,
            "state": self.state,
            "restarts": self.restarts,
            "exitCode": self.exit_code,
        }


class ReplicaSupervisor:
    def __init__(self, state: StateDir):
        self.state = state
        self.replicas: dict[str, list[Replica]] = {}
        self.specs: dict[str, DeploymentSpec] = {}
        self._names = itertools.count(1)
        self._reported: dict[str, dict] = {}

    # -- the loop -------------------------------------------------------------------------
    def tick(self) -> None:
        self.specs = self.state.specs()
        for spec in self.specs.values():
            try:
                self.reconcile(spec)
            except Exception:  # one bad spec must not stop the others
                log.exception("could not reconcile deployment %s", spec.id)
        for deployment_id in list(self.replicas):
            if deployment_id not in self.specs:
                self.remove(deployment_id)
        for spec in self.specs.values():
            self.publish(spec)

    def shutdown(self) -> None:
        for replicas in self.replicas.values():
            for replica in replicas:
                self.stop(replica, force=True)

    # -- reconciling one deployment -------------------------------------------------------
    def reconcile(self, spec: DeploymentSpec) -> None:
        replicas = self.replicas.setdefault(spec.id, [])
        now = time.monotonic()
        for replica in replicas:
            self.check(replica, spec, now)
        replicas[:] = [r for r in replicas if r.state != "stopped"]
        current = [r for r in replicas if r.revision == spec.revision and r.state != "stopping"]
        old = [r for r in replicas if r.revision != spec.revision and r.state != "stopping"]
        for replica in current:
            if replica.state == "failed" and replica.generation != spec.generation:
                # A new attempt (another operation) at the same revision: try afresh.
                self.stop(replica, force=True)
        replicas[:] = [r for r in replicas if r.state != "stopped"]
        current = [r for r in current if r.state != "stopped"]
        if any(r.state == "failed" for r in current):
            return  # reported; the worker fails the deployment
        for _ in range(spec.replicas - len(current)):
            replica = self.start(spec)
            replicas.append(replica)
            current.append(replica)
        surplus = len(current) - spec.replicas
        if surplus > 0:
            # Scale in: stop replicas that serve nothing first, then the newest.
            order = sorted(current, key=lambda r: (r.state == "ready", -r.started_at))
            for replica in order[:surplus]:
                self.stop(replica)
        ready = sum(r.state == "ready" for r in current)
        if old and ready >= spec.replicas:
            # Rolling update: the old revision goes only once the new one is all ready.
            for replica in old:
                self.stop(replica)

    def check(self, replica: Replica, spec: DeploymentSpec, now: float) -> None:
        if replica.state == "stopping":
            if replica.process.poll() is not None:
                replica.state = "stopped"
                self._close(replica)
            elif now >= replica.stop_deadline:
                self._signal(replica, signal.SIGKILL)
            elif replica.terminate_at and now >= replica.terminate_at:
                self._signal(replica, signal.SIGTERM)
                replica.terminate_at = 0.0
            return
        if replica.state in ("failed", "stopped"):
            return
        if replica.state == "crashed":
            if now >= replica.restart_at:
                self._launch(replica, spec)
            return
        code = replica.process.poll()
        if code is not None:
            self._exited(replica, code, now)
            return
        self._probe_readiness(replica, spec.readiness, now)
        self._probe_liveness(replica, spec, now)

    def _exited(self, replica: Replica, code: int, now: float) -> None:
        replica.exit_code = code
        self._close(replica)
        if not replica.ever_ready:
            replica.start_failures += 1
        if replica.start_failures >= MAX_START_FAILURES:
            replica.state = "failed"
            log.error("replica %s failed: exited %s before becoming ready", replica.name, code)
            return
        replica.state = "crashed"
        replica.restart_at = now + min(2.0**replica.restarts, MAX_BACKOFF)
        log.warning("replica %s exited with %s; restarting", replica.name, code)

    def _probe_readiness(self, replica: Replica, probe: Probe, now: float) -> None:
        if now < replica.started_at + probe.initial_delay or now < replica.next_ready_probe:
            return
        interval = probe.period if replica.ever_ready else min(probe.period, STARTUP_PROBE_INTERVAL)
        replica.next_ready_probe = now + interval
        if probe_ok(replica.port, probe):
            replica.ready_failures = 0
            replica.ready_streak += 1
            if replica.ready_streak >= probe.success_threshold:
                replica.state, replica.ever_ready = "ready", True
        else:
            replica.ready_streak = 0
            replica.ready_failures += 1
            if replica.ever_ready and replica.ready_failures >= probe.failure_threshold:
                replica.state = "unready"

    def _probe_liveness(self, replica: Replica, spec: DeploymentSpec, now: float) -> None:
        probe = spec.liveness
        if not replica.ever_ready and now < replica.started_at + probe.initial_delay:
            return
        if now < replica.next_live_probe:
            return
        replica.next_live_probe = now + probe.period
        if probe_ok(replica.port, probe):
            replica.live_failures = 0
            return
        replica.live_failures += 1
        if replica.live_failures >= probe.failure_threshold:
            log.warning("replica %s failed its liveness probe; restarting", replica.name)
            self._signal(replica, signal.SIGKILL)
            replica.process.wait()
            replica.restarts += 1
            self._launch(replica, spec)

    # -- processes --------------------------------------------------------------------------
    def start(self, spec: DeploymentSpec) -> Replica:
        log_dir = self.state.logs(spec.id)
        log_dir.mkdir(parents=True, exist_ok=True)
        name = f"{spec.revision[:8]}-{next(self._names)}"
        replica = Replica(
            name, spec.revision, spec.generation, free_port(), str(log_dir / f"{name}.log")
        )
        self._launch(replica, spec)
        return replica

    def _launch(self, replica: Replica, spec: DeploymentSpec) -> None:
        if replica.state == "crashed":
            replica.restarts += 1
        command = [part.replace("{port}", str(replica.port)) for part in spec.command]
        limit, cpus = spec.memory_limit_bytes, spec.cpu_limit

        def limits():  # in the child, before exec
            if limit:
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            if cpus:
                allowed = sorted(os.sched_getaffinity(0))
                os.sched_setaffinity(0, allowed[: max(1, min(cpus, len(allowed)))])

        self._close(replica)
        replica.log_file = open(replica.log_path, "ab")  # noqa: SIM115
        replica.process = subprocess.Popen(
            command,
            cwd=spec.cwd,
            env={
                **{k: os.environ[k] for k in INHERITED_ENVIRONMENT if k in os.environ},
                **spec.env,
                "PYTHONUNBUFFERED": "1",
            },
            stdout=replica.log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stopped as a whole
            preexec_fn=limits,
        )
        now = time.monotonic()
        replica.state, replica.started_at, replica.exit_code = "starting", now, None
        replica.ready_streak = replica.ready_failures = replica.live_failures = 0
        replica.next_ready_probe = replica.next_live_probe = now
        log.info(
            "started replica %s (pid %s, port %s)", replica.name, replica.process.pid, replica.port
        )

    def stop(self, replica: Replica, force: bool = False) -> None:
        if replica.process is None or replica.process.poll() is not None:
            replica.state = "stopped"
            self._close(replica)
            return
        replica.state = "stopping"
        now = time.monotonic()
        replica.terminate_at = now + (0.0 if force else DRAIN)
        replica.stop_deadline = replica.terminate_at + STOP_GRACE
        if force:
            self._signal(replica, signal.SIGTERM)
            try:
                replica.process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                self._signal(replica, signal.SIGKILL)
                replica.process.wait()
            replica.state = "stopped"

    def _signal(self, replica: Replica, signum: int) -> None:
        try:
            os.killpg(replica.process.pid, signum)
        except ProcessLookupError:
            pass

    @staticmethod
    def _close(replica: Replica) -> None:
        if replica.log_file is not None:
            replica.log_file.close()
            replica.log_file = None

    def remove(self, deployment_id: str) -> None:
        """The spec is gone: stop every replica, then forget the deployment's files."""
        replicas = self.replicas.get(deployment_id, [])
        for replica in replicas:
            if replica.state not in ("stopped",):
                self.stop(replica, force=True)
        del self.replicas[deployment_id]
        # Logs first: once the status file is gone the deployment counts as fully removed.
        shutil.rmtree(self.state.logs(deployment_id), ignore_errors=True)
        self.state.status(deployment_id).unlink(missing_ok=True)
        self._reported.pop(deployment_id, None)
        log.info("deployment %s removed", deployment_id)

    # -- reporting ----------------------------------------------------------------------------
    def publish(self, spec: DeploymentSpec) -> None:
        replicas = self.replicas.get(spec.id, [])
        current = [r for r in replicas if r.revision == spec.revision]
        failed = next((r for r in current if r.state == "failed"), None)
        status = {
            "id": spec.id,
            "revision": spec.revision,
            "desired": spec.replicas,
            "ready": sum(r.state == "ready" for r in current),
            "replicas": [r.report() for r in replicas if r.state != "stopped"],
            "failure": None
            if failed is None
            else {
                "replica": failed.name,
                "exitCode": failed.exit_code,
                "message": (
                    f"replica {failed.name} exited with code {failed.exit_code} "
                    f"{failed.start_failures} times before becoming ready"
                ),
                "logTail": tail(failed.log_path),
            },
        }
        if status != self._reported.get(spec.id):
            write_json(self.state.status(spec.id), status)
            self._reported[spec.id] = status
