"""``python -m dataplane.router --port 8080``: serve scoring URIs from the routing table,
with one serving process per core (``--processes``) sharing the port."""

from __future__ import annotations

import argparse
import logging
import os
import select
import shutil
import signal
import tempfile
import time

from contracts.redis_urls import has_password, with_password
from dataplane.processes import die_with_parent
from dataplane.router.proxy import MAX_BODY
from dataplane.router.slots import SharedCounters

log = logging.getLogger("weir.router")
READY_TIMEOUT = 30.0
RESTART_DELAY = 0.5


class RedisUrlAction(argparse.Action):
    """A Redis URL given on the command line, which must not carry a password: any user of
    the machine can read a process's command line (``ps``)."""

    def __call__(self, parser, namespace, value, option_string=None):
        if has_password(value):
            parser.error(
                f"{option_string} must not carry a password (ps shows command lines): set "
                "WEIR_REDIS_PASSWORD, or the URL in WEIR_ROUTING_REDIS_URL / CELERY_BROKER_URL"
            )
        setattr(namespace, self.dest, value)


def parse_args(argv=None):
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m dataplane.router")
    parser.add_argument("--host", default=env("WEIR_ROUTER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("WEIR_SCORING_PORT", "8080")))
    parser.add_argument(
        "--processes",
        type=int,
        default=int(env("WEIR_ROUTER_PROCESSES", "0")) or os.cpu_count() or 1,
        help="serving processes sharing the port (default: one per core)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(env("WEIR_ROUTER_METRICS_PORT", "0")),
        help="serve Prometheus /metrics on this port (0: not served)",
    )
    parser.add_argument(
        "--redis-url",
        action=RedisUrlAction,
        default=env("WEIR_ROUTING_REDIS_URL")
        or env("CELERY_BROKER_URL")
        or "redis://localhost:6379/0",
    )
    parser.add_argument(
        "--access-log",
        default=env("WEIR_ROUTER_ACCESS_LOG", "-"),
        help="where to write one JSON line per request: a file, - for stdout, or off",
    )
    parser.add_argument(
        "--broker-url",
        action=RedisUrlAction,
        default=env("CELERY_BROKER_URL") or "redis://localhost:6379/0",
        help="where the autoscaler sends its decisions (the workers' Celery broker)",
    )
    parser.add_argument(
        "--max-body",
        type=int,
        default=int(env("WEIR_SCORING_MAX_BODY", str(MAX_BODY))),
        help="bytes in one scoring request body; more is refused with 413 (default: "
        "azureml-fe's 100 MB)",
    )
    parser.add_argument("--queue", default=env("WEIR_QUEUE", "provision"))
    parser.add_argument(
        "--scale-down-delay",
        type=float,
        default=float(env("WEIR_SCALE_DOWN_DELAY", "60")),
        help="seconds of low load before the autoscaler removes replicas",
    )
    parser.add_argument(
        "--hold-max",
        type=int,
        default=int(env("WEIR_ROUTER_HOLD_MAX", "100")),
        help="requests held per endpoint while a deployment at zero replicas starts one; "
        "more are refused with 429",
    )
    parser.add_argument(
        "--hold-seconds",
        type=float,
        default=float(env("WEIR_ROUTER_HOLD_SECONDS", "30")),
        help="how long a request is held for a replica to start (then 503 with Retry-After)",
    )
    args = parser.parse_args(argv)
    args.redis_url = with_password(args.redis_url)
    args.broker_url = with_password(args.broker_url)
    return args


class RouterSupervisor:
    """Runs ``--processes`` serving processes on one port (SO_REUSEPORT), forked after the
    shared request counters are mapped; serves their merged /metrics; restarts one that
    dies (zeroing what it had counted); passes SIGTERM/SIGINT/SIGHUP on (as SIGTERM) and
    waits for them."""

    def __init__(self, args, counters, metrics_dir: str):
        self.args = args
        self.counters = counters
        self.metrics_dir = metrics_dir
        self.children: dict[int, int] = {}  # pid -> process index
        self.stopping = False
        self.ready_read, self.ready_write = os.pipe()

    def run(self) -> None:
        for index in range(self.args.processes):
            self._fork(index)
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._stop)
        self._wait_ready()
        if self.args.metrics_port:
            from prometheus_client import CollectorRegistry, multiprocess, start_http_server

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=self.metrics_dir)
            start_http_server(self.args.metrics_port, addr=self.args.host, registry=registry)
        print(f"READY http://{self.args.host}:{self.args.port}", flush=True)
        while self.children:
            pid, status = os.wait()
            index = self.children.pop(pid, None)
            if index is None:
                continue
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.metrics_dir)
            self.counters.forget(index)
            if not self.stopping:
                log.error("router process %d exited (status %d); starting another", pid, status)
                time.sleep(RESTART_DELAY)
                self._fork(index)
        shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def _fork(self, index: int) -> None:
        supervisor = os.getpid()
        pid = os.fork()
        if pid:
            self.children[pid] = index
            return
        code = 0
        try:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)
            # A hangup of the whole process group is the supervisor's to act on: it passes
            # SIGTERM on, and the serving process stops gracefully.
            signal.signal(signal.SIGHUP, signal.SIG_IGN)
            die_with_parent(supervisor)
            self.counters.bind(index)
            from dataplane.router import process

            process.run(self.args, self.counters, self.ready_write)
        except BaseException:  # noqa: BLE001 - the child must never return into the parent
            log.exception("router process failed")
            code = 1
        finally:
            os._exit(code)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        ready = 0
        while ready < self.args.processes and time.monotonic() < deadline and not self.stopping:
            readable, _, _ = select.select([self.ready_read], [], [], 0.5)
            if readable:
                ready += len(os.read(self.ready_read, 64))

    def _stop(self, signum, frame) -> None:
        self.stopping = True
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


def run(argv=None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # The autoscaler's Celery client reads CELERY_BROKER_URL from the environment ahead of
    # the broker it is given: it gets --broker-url, with its password.
    os.environ["CELERY_BROKER_URL"] = args.broker_url
    counters = SharedCounters(args.processes)
    if args.processes == 1:
        from dataplane.router import process

        # SIGHUP stops it as SIGTERM does (the serving loop handles SIGTERM).
        signal.signal(signal.SIGHUP, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
        process.run(args, counters)
        return
    # Before anything imports prometheus_client: the serving processes count in files here,
    # which the supervisor merges for /metrics.
    metrics_dir = tempfile.mkdtemp(prefix="weir-router-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    RouterSupervisor(args, counters, metrics_dir).run()


if __name__ == "__main__":
    run()
