"""The supervision loop: start, probe, restart and stop replica processes to match specs.

Replica states: ``starting`` (running, not yet ready), ``ready``, ``unready`` (was ready,
readiness failing), ``crashed`` (exited; restarts after a backoff), ``failed`` (exited
``MAX_START_FAILURES`` times without ever becoming ready: not restarted, reported), and
``stopping``.

Replicas listen on Unix sockets in ``{state}/sockets`` (mode 0700), so nothing but Weir's
own user (the router, the agent's probes) can reach them: no key check can be bypassed by
connecting to a replica directly. They die with the agent (a parent-death signal), and an
agent starting sweeps any replica a previous one left (``{state}/processes``).
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
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dataplane.agent.address import ReplicaConnection, unix_address
from dataplane.agent.spec import DeploymentSpec, Probe, StateDir, read_json, write_json
from dataplane.processes import die_with_parent

log = logging.getLogger("weir.agent")

MAX_START_FAILURES = 3
MAX_BACKOFF = 30.0
# The least time a replica gets between SIGTERM and SIGKILL; a deployment whose request
# timeout is longer gets that instead (see stop_grace).
STOP_GRACE = 10.0
# A replica being stopped for a scale-in or a rolling update is reported ``stopping`` (not
# ready) this long before it gets SIGTERM. Within it the worker, which polls the status
# every 0.05 s, sees the rollout done without the replica, commits and announces the new
# route, and the routers apply it (milliseconds): 2 s leaves room for a busy machine, so no
# new request is sent to a replica that has stopped listening.
DRAIN = 2.0
# While a replica is starting (first start or any restart), readiness is probed this often
# (not every `period`), so it serves as soon as it can: a probe of a replica not listening
# yet is a refused connect on a Unix socket, microseconds. (A cold start from zero waits on
# this: 0.2 s cost up to 0.2 s of it.)
STARTUP_PROBE_INTERVAL = 0.05
# Probes run here, off the loop: a replica that accepts and never answers holds one thread
# for its probe's timeout, never the others' probes.
PROBE_THREADS = 16
# How long a sweep waits for a left-over replica after SIGKILL before giving up on it.
SWEEP_KILL_WAIT = 5.0
LOG_TAIL_LINES = 40
# The only variables a replica inherits from the agent: user code must not see the
# server's own settings or secrets.
INHERITED_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")
# sun_path holds 108 bytes; a socket path longer than this cannot be bound.
MAX_SOCKET_PATH = 107


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def probe_ok(address: str, probe: Probe) -> bool:
    connection = ReplicaConnection(address, timeout=probe.timeout)
    try:
        connection.request("GET", probe.path)
        return 200 <= connection.getresponse().status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def stop_grace(spec: DeploymentSpec) -> float:
    """SIGTERM to SIGKILL: at least the deployment's request timeout (plus a second to
    answer), so a request taken just before SIGTERM can still be answered."""
    return max(STOP_GRACE, spec.request_timeout + 1.0)


def tail(path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, errors="replace") as fh:
            return "".join(deque(fh, maxlen=lines))
    except OSError:
        return ""


# -- process records: what the next agent sweeps -----------------------------------------------
def start_time(pid: int) -> int | None:
    """When the process started (/proc/<pid>/stat field 22, clock ticks since boot), None
    when there is no such process. With the pid it names one process: a reused pid has
    another start time."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on; the command name before it may hold
    spaces and parentheses, so the split starts after the last ')'."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return text[text.rindex(")") + 2 :].split()


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is still running (zombies do not count)."""
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
                return True
    return False


def record_process(state: StateDir, pid: int, **details) -> None:
    record = {"pid": pid, "startTime": start_time(pid), **details}
    write_json(state.processes / f"{pid}.json", record)


def forget_process(state: StateDir, pid: int) -> None:
    (state.processes / f"{pid}.json").unlink(missing_ok=True)


@dataclass
class Replica:
    name: str
    revision: str
    generation: str
    socket: str
    log_path: str
    grace: float = STOP_GRACE
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
    ready_probe: Future | None = field(default=None, repr=False)
    live_probe: Future | None = field(default=None, repr=False)
    restart_at: float = 0.0
    terminate_at: float = 0.0
    stop_deadline: float = 0.0
    log_file: object = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return unix_address(self.socket)

    def report(self) -> dict:
        return {
            "name": self.name,
            "revision": self.revision,
            "address": self.address,
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
        self._probes = ThreadPoolExecutor(PROBE_THREADS, "probe")
        # Set when a probe of a starting replica finishes: the loop need not sleep out its
        # tick before acting on it.
        self.wakeup = threading.Event()

    # -- start-up -------------------------------------------------------------------------
    def prepare(self) -> None:
        """Make the state directory (sockets private to this user) and sweep what a
        previous agent left running."""
        self.state.root.mkdir(parents=True, exist_ok=True)
        self.state.sockets.mkdir(mode=0o700, exist_ok=True)
        os.chmod(self.state.sockets, 0o700)  # also when an older agent made it
        longest = len(str(self.state.sockets.resolve())) + len("/12345678-123456.sock")
        if longest > MAX_SOCKET_PATH:
            raise SystemExit(
                f"{self.state.sockets} is too long a path for Unix sockets "
                f"({MAX_SOCKET_PATH} bytes); give the agent a shorter WEIR_AGENT_DIR"
            )
        self.state.processes.mkdir(exist_ok=True)
        self.sweep()

    def sweep(self) -> None:
        """Stop every replica process group a previous agent recorded and left running
        (SIGTERM, then SIGKILL after its grace), then forget the records and sockets.

        Sweeping rather than adopting: a new agent cannot trust what it did not start (its
        log files, its probe state, whether it was half-stopped), so it starts afresh."""
        groups: dict[int, float] = {}
        for path in self.state.processes.glob("*.json"):
            record = read_json(path) or {}
            pid = record.get("pid")
            if not isinstance(pid, int):
                path.unlink(missing_ok=True)
                continue
            now_started = start_time(pid)
            # A live leader with another start time is a reused pid: not ours. A leader
            # gone may have left its group (its pid cannot be reused while the group
            # exists), so the group is still signalled.
            if now_started is None or now_started == record.get("startTime"):
                groups[pid] = float(record.get("grace") or STOP_GRACE)
        if groups:
            log.warning("stopping %d replica(s) a previous agent left", len(groups))
        self._stop_groups(groups)
        for path in self.state.processes.glob("*.json"):
            path.unlink(missing_ok=True)
        for path in self.state.sockets.glob("*.sock"):
            path.unlink(missing_ok=True)
        # What the previous agent reported runs no more; the first tick reports afresh.
        for path in self.state.root.glob("status/*.json"):
            if not self.state.desired(path.stem).exists():  # deleted while no agent ran
                shutil.rmtree(self.state.logs(path.stem), ignore_errors=True)
            path.unlink(missing_ok=True)

    @staticmethod
    def _stop_groups(groups: dict[int, float]) -> None:
        """SIGTERM every group, SIGKILL those still running after their grace."""
        started = time.monotonic()
        pending = {pgid for pgid in groups if _killpg(pgid, signal.SIGTERM)}
        killed: dict[int, float] = {}
        while pending:
            now = time.monotonic()
            for pgid in list(pending):
                if not group_alive(pgid):
                    pending.discard(pgid)
                elif pgid not in killed and now - started >= groups[pgid]:
                    log.warning("replica group %d ignored SIGTERM; killing it", pgid)
                    _killpg(pgid, signal.SIGKILL)
                    killed[pgid] = now
                elif pgid in killed and now - killed[pgid] > SWEEP_KILL_WAIT:
                    log.error("replica group %d survived SIGKILL", pgid)
                    pending.discard(pgid)
            time.sleep(0.05)

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

    def starting(self) -> bool:
        return any(r.state == "starting" for group in self.replicas.values() for r in group)

    def shutdown(self) -> None:
        """Stop every replica (SIGTERM now, SIGKILL after its grace) and wait for them."""
        replicas = [r for group in self.replicas.values() for r in group]
        for replica in replicas:
            if replica.state not in ("stopping", "stopped"):
                self.stop(replica, drain=False)
        while True:
            now = time.monotonic()
            for replica in replicas:
                self._check_stopping(replica, now)
            if all(r.state == "stopped" for r in replicas):
                break
            time.sleep(0.05)
        self._probes.shutdown(wait=False, cancel_futures=True)

    # -- reconciling one deployment -------------------------------------------------------
    def reconcile(self, spec: DeploymentSpec) -> None:
        replicas = self.replicas.setdefault(spec.id, [])
        now = time.monotonic()
        for replica in replicas:
            self.check(replica, spec, now)
        current = [r for r in replicas if r.revision == spec.revision and r.state != "stopping"]
        old = [r for r in replicas if r.revision != spec.revision and r.state != "stopping"]
        for replica in current:
            if replica.state == "failed" and replica.generation != spec.generation:
                # A new attempt (another operation) at the same revision: try afresh.
                self.stop(replica, drain=False)
        replicas[:] = [r for r in replicas if r.state != "stopped"]
        current = [r for r in current if r.state not in ("stopped", "stopping")]
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
            self._check_stopping(replica, now)
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

    def _check_stopping(self, replica: Replica, now: float) -> None:
        if replica.state != "stopping":
            return
        if replica.process.poll() is not None:
            replica.state = "stopped"
            self._reaped(replica)
        elif now >= replica.stop_deadline:
            self._signal(replica, signal.SIGKILL)
        elif replica.terminate_at and now >= replica.terminate_at:
            self._signal(replica, signal.SIGTERM)
            replica.terminate_at = 0.0

    def _exited(self, replica: Replica, code: int, now: float) -> None:
        replica.exit_code = code
        self._reaped(replica)
        if not replica.ever_ready:
            replica.start_failures += 1
        if replica.start_failures >= MAX_START_FAILURES:
            replica.state = "failed"
            log.error("replica %s failed: exited %s before becoming ready", replica.name, code)
            return
        replica.state = "crashed"
        # The first restart is at once (a replica killed under load is back as soon as it
        # can serve); then 1 s, 2 s, 4 s ... up to MAX_BACKOFF for one that keeps exiting.
        backoff = 0.0 if replica.restarts == 0 else 2.0 ** (replica.restarts - 1)
        replica.restart_at = now + min(backoff, MAX_BACKOFF)
        log.warning("replica %s exited with %s; restarting", replica.name, code)

    # -- probes ---------------------------------------------------------------------------
    def _probe(self, replica: Replica, probe: Probe) -> Future:
        future = self._probes.submit(probe_ok, replica.address, probe)
        if replica.state == "starting":
            future.add_done_callback(lambda _: self.wakeup.set())
        return future

    def _probe_readiness(self, replica: Replica, probe: Probe, now: float) -> None:
        if replica.ready_probe is not None:
            if not replica.ready_probe.done():
                return  # one probe at a time; a hung replica holds only its own
            ok, replica.ready_probe = replica.ready_probe.result(), None
            if ok:
                replica.ready_failures = 0
                replica.ready_streak += 1
                if replica.ready_streak >= probe.success_threshold:
                    replica.state, replica.ever_ready = "ready", True
            else:
                replica.ready_streak = 0
                replica.ready_failures += 1
                if replica.state == "ready" and replica.ready_failures >= probe.failure_threshold:
                    replica.state = "unready"
        if now < replica.started_at + probe.initial_delay or now < replica.next_ready_probe:
            return
        starting = replica.state == "starting"
        interval = min(probe.period, STARTUP_PROBE_INTERVAL) if starting else probe.period
        replica.next_ready_probe = now + interval
        replica.ready_probe = self._probe(replica, probe)

    def _probe_liveness(self, replica: Replica, spec: DeploymentSpec, now: float) -> None:
        probe = spec.liveness
        if replica.live_probe is not None:
            if not replica.live_probe.done():
                return
            ok, replica.live_probe = replica.live_probe.result(), None
            if ok:
                replica.live_failures = 0
            else:
                replica.live_failures += 1
                if replica.live_failures >= probe.failure_threshold:
                    log.warning("replica %s failed its liveness probe; restarting", replica.name)
                    self._signal(replica, signal.SIGKILL)
                    replica.process.wait()
                    self._reaped(replica)
                    replica.restarts += 1
                    self._launch(replica, spec)
                    return
        # As a kubelet does: the initial delay follows every start, restarts included.
        if now < replica.started_at + probe.initial_delay or now < replica.next_live_probe:
            return
        replica.next_live_probe = now + probe.period
        replica.live_probe = self._probe(replica, probe)

    # -- processes --------------------------------------------------------------------------
    def start(self, spec: DeploymentSpec) -> Replica:
        log_dir = self.state.logs(spec.id)
        log_dir.mkdir(parents=True, exist_ok=True)
        name = f"{spec.revision[:8]}-{next(self._names)}"
        replica = Replica(
            name,
            spec.revision,
            spec.generation,
            str(self.state.sockets.resolve() / f"{name}.sock"),
            str(log_dir / f"{name}.log"),
        )
        self._launch(replica, spec)
        return replica

    def _launch(self, replica: Replica, spec: DeploymentSpec) -> None:
        """Start the replica's process; from here it is ``starting`` and probed at the
        start-up cadence until ready (a restart as much as a first start)."""
        if replica.state == "crashed":
            replica.restarts += 1
        command = replica_command(spec.command, replica.socket)
        limit, cpus, agent_pid = spec.memory_limit_bytes, spec.cpu_limit, os.getpid()

        def in_child():  # in the replica, before exec
            # SIGTERM when the agent dies, even by SIGKILL (forked by the loop's thread only:
            # the signal follows the thread that forked).
            die_with_parent(agent_pid)
            if limit:
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            if cpus:
                allowed = sorted(os.sched_getaffinity(0))
                os.sched_setaffinity(0, allowed[: max(1, min(cpus, len(allowed)))])

        self._close(replica)
        replica.grace = stop_grace(spec)
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
            preexec_fn=in_child,
        )
        record_process(
            self.state,
            replica.process.pid,
            deployment=spec.id,
            replica=replica.name,
            grace=replica.grace,
        )
        now = time.monotonic()
        replica.state, replica.started_at, replica.exit_code = "starting", now, None
        replica.ready_streak = replica.ready_failures = replica.live_failures = 0
        replica.next_ready_probe = replica.next_live_probe = now
        replica.ready_probe = replica.live_probe = None  # a probe of the last process
        log.info(
            "started replica %s (pid %s, %s)", replica.name, replica.process.pid, replica.address
        )

    def stop(self, replica: Replica, drain: bool = True) -> None:
        """Report the replica ``stopping``; SIGTERM it after DRAIN (at once with
        ``drain=False``), SIGKILL after its grace. The loop follows it to ``stopped``."""
        if replica.process is None or replica.process.poll() is not None:
            replica.state = "stopped"
            self._reaped(replica)
            return
        replica.state = "stopping"
        now = time.monotonic()
        replica.terminate_at = now + (DRAIN if drain else 0.0)
        replica.stop_deadline = replica.terminate_at + replica.grace
        if not drain:
            self._signal(replica, signal.SIGTERM)
            replica.terminate_at = 0.0

    def _signal(self, replica: Replica, signum: int) -> None:
        _killpg(replica.process.pid, signum)

    def _reaped(self, replica: Replica) -> None:
        """Its process has exited: close its log, drop its record and its socket."""
        self._close(replica)
        if replica.process is not None:
            forget_process(self.state, replica.process.pid)
        Path(replica.socket).unlink(missing_ok=True)

    @staticmethod
    def _close(replica: Replica) -> None:
        if replica.log_file is not None:
            replica.log_file.close()
            replica.log_file = None

    def remove(self, deployment_id: str) -> None:
        """The spec is gone: stop every replica (no drain: nothing routes to a deleted
        deployment), then, once they have all exited, forget the deployment's files."""
        replicas = self.replicas[deployment_id]
        now = time.monotonic()
        for replica in replicas:
            if replica.state not in ("stopping", "stopped"):
                self.stop(replica, drain=False)
            self._check_stopping(replica, now)
        replicas[:] = [r for r in replicas if r.state != "stopped"]
        if replicas:
            return  # the next ticks follow them
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


def replica_command(command: list[str], socket_path: str) -> list[str]:
    """The spec's command with the replica's socket. A spec written before replicas had
    sockets says ``--port {port}``: that pair becomes ``--socket PATH`` too, so no replica
    listens on TCP."""
    filled: list[str] = []
    for part in command:
        if part == "{port}" and filled[-1:] == ["--port"]:
            filled[-1:] = ["--socket", socket_path]
        else:
            filled.append(part.replace("{socket}", socket_path))
    return filled


def _killpg(pgid: int, signum: int) -> bool:
    """Signal the process group; False when it no longer exists."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True
