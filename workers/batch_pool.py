"""The scoring processes of one batch job on this machine: ``instanceCount`` ×
``maxConcurrencyPerInstance`` drivers (dataplane.batch.driver), each running the user's
``init()`` once and then the mini-batches it is handed. The pool hands out mini-batches,
enforces the retry timeout, and reports each outcome to the caller, which commits it to the
job's ledger; it knows nothing of Postgres."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dataplane.batch.command import driver_command
from dataplane.processes import die_with_parent


@dataclass
class Work:
    index: int
    files: list[str]
    part: str


@dataclass
class Driver:
    name: str
    process: subprocess.Popen
    control: int
    events: object  # a binary file reading the event pipe
    buffer: bytes = b""
    ready: bool = False
    work: Work | None = None
    started: float = 0.0
    spawned: float = field(default_factory=time.monotonic)


@dataclass
class PoolSettings:
    python: str
    script: str | None
    output_dir: Path
    logs_dir: Path
    cwd: Path
    env: dict
    processes: int
    timeout: float
    logging_level: str
    output_action: str
    append_row_file_name: str
    mini_batch_size: int
    error_threshold: int
    process_count_per_node: int
    mlflow: bool = False
    # How long init() may take before the job fails (loading a model can be slow).
    init_timeout: float = 600.0


class InitFailed(Exception):
    """A driver's init() raised: the job cannot run (Azure fails it)."""


class Pool:
    def __init__(self, settings: PoolSettings):
        self.settings = settings
        self.drivers: list[Driver] = []
        self.selector = selectors.DefaultSelector()
        self.spawned = 0

    # ---- processes ---------------------------------------------------------------------
    def start(self) -> None:
        for _ in range(self.settings.processes):
            self._spawn()

    def _spawn(self) -> Driver:
        s = self.settings
        self.spawned += 1
        name = f"process{self.spawned:03d}"
        control_read, control_write = os.pipe()
        event_read, event_write = os.pipe()
        stdout = s.logs_dir / "user" / "stdout" / f"{name}.stdout.txt"
        stderr = s.logs_dir / "user" / "stderr" / f"{name}.stderr.txt"
        stdout.parent.mkdir(parents=True, exist_ok=True)
        stderr.parent.mkdir(parents=True, exist_ok=True)
        command = driver_command(
            python=s.python,
            script=s.script,
            output_dir=str(s.output_dir),
            control_fd=control_read,
            event_fd=event_write,
            process_name=name,
            logging_level=s.logging_level,
            output_action=s.output_action,
            append_row_file_name=s.append_row_file_name,
            mini_batch_size=s.mini_batch_size,
            error_threshold=s.error_threshold,
            run_invocation_timeout=int(s.timeout),
            process_count_per_node=s.process_count_per_node,
            mlflow=s.mlflow,
        )
        parent = os.getpid()
        with stdout.open("ab") as out, stderr.open("ab") as err:
            process = subprocess.Popen(
                command,
                cwd=s.cwd,
                env=s.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                pass_fds=(control_read, event_write),
                preexec_fn=lambda: die_with_parent(parent),
            )
        os.close(control_read)
        os.close(event_write)
        events = os.fdopen(event_read, "rb", buffering=0)
        driver = Driver(name, process, control_write, events)
        self.selector.register(events, selectors.EVENT_READ, driver)
        self.drivers.append(driver)
        return driver

    def _retire(self, driver: Driver, kill: bool) -> None:
        if kill and driver.process.poll() is None:
            driver.process.send_signal(signal.SIGKILL)
        try:
            self.selector.unregister(driver.events)
        except (KeyError, ValueError):
            pass
        driver.events.close()
        try:
            os.close(driver.control)
        except OSError:
            pass
        driver.process.wait()
        self.drivers.remove(driver)

    def stop(self) -> None:
        """Close every driver's control pipe (it calls shutdown() and exits), then wait."""
        for driver in list(self.drivers):
            try:
                os.close(driver.control)
            except OSError:
                pass
        deadline = time.monotonic() + 10
        for driver in list(self.drivers):
            try:
                driver.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                driver.process.kill()
            driver.control = -1
            self._retire(driver, kill=True)
        self.selector.close()

    def kill(self) -> None:
        for driver in list(self.drivers):
            self._retire(driver, kill=True)
        self.selector.close()

    # ---- work ----------------------------------------------------------------------------
    def idle(self) -> list[Driver]:
        return [d for d in self.drivers if d.ready and d.work is None]

    def busy(self) -> int:
        return sum(1 for d in self.drivers if d.work is not None)

    def hand(self, driver: Driver, work: Work) -> None:
        driver.work, driver.started = work, time.monotonic()
        line = json.dumps({"index": work.index, "files": work.files, "part": work.part})
        os.write(driver.control, line.encode() + b"\n")

    def poll(
        self,
        seconds: float,
        on_done: Callable[[Work, dict], None],
        on_failed: Callable[[Work, str], None],
    ) -> None:
        """Wait up to ``seconds`` for events and report them. A driver that dies or passes
        the timeout with work in hand fails that work and is replaced."""
        for key, _ in self.selector.select(timeout=seconds):
            driver: Driver = key.data
            chunk = driver.events.read(65536)
            if not chunk:
                work = driver.work
                code = driver.process.wait()
                self._retire(driver, kill=False)
                if not driver.ready:
                    raise InitFailed(f"{driver.name} exited with code {code} before init()")
                if work is not None:
                    on_failed(work, f"{driver.name} exited with code {code} while scoring")
                self._spawn()
                continue
            driver.buffer += chunk
            while b"\n" in driver.buffer:
                line, driver.buffer = driver.buffer.split(b"\n", 1)
                self._event(driver, json.loads(line), on_done, on_failed)
        now = time.monotonic()
        for driver in self.drivers:
            if not driver.ready and now - driver.spawned > self.settings.init_timeout:
                raise InitFailed(
                    f"{driver.name}: init() did not return within {self.settings.init_timeout:g} s"
                )
        for driver in list(self.drivers):
            if driver.work is not None and now - driver.started > self.settings.timeout:
                work = driver.work
                self._retire(driver, kill=True)
                on_failed(
                    work,
                    f"{driver.name}: run() did not return within the timeout "
                    f"({self.settings.timeout:g} s)",
                )
                self._spawn()

    def _event(self, driver: Driver, event: dict, on_done, on_failed) -> None:
        kind = event.get("event")
        if kind == "ready":
            driver.ready = True
        elif kind == "init_failed":
            raise InitFailed(event.get("error", "init() failed"))
        elif kind in ("done", "failed") and driver.work is not None:
            work, driver.work = driver.work, None
            if kind == "done":
                on_done(work, event)
            else:
                on_failed(work, event.get("error", "run() failed"))
