"""``python -m dataplane.inference --entry-script score.py --port 5001``: serve one script
(``--socket PATH`` instead of ``--port``: on a Unix socket only this user can connect to, as
the local agent runs replicas).

Azure's environment variables work too: AZUREML_ENTRY_SCRIPT, AZUREML_MODEL_DIR, and
WORKER_COUNT / maxConcurrentRequestsPerInstance as ``--concurrency``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import stat
import sys

from dataplane.http import Response, serve, serve_until_signalled
from dataplane.inference.collector import Collector, Config
from dataplane.inference.errors import ScriptError
from dataplane.inference.scoring import UserScript
from dataplane.inference.server import InferenceApp

log = logging.getLogger("weir.inference")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m dataplane.inference")
    parser.add_argument(
        "--entry-script", default=os.environ.get("AZUREML_ENTRY_SCRIPT", "score.py")
    )
    parser.add_argument("--model-dir", default=os.environ.get("AZUREML_MODEL_DIR"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("AZUREML_SERVER_PORT", "5001"))
    )
    parser.add_argument("--socket", help="listen on this Unix socket path, not on --port")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=int(os.environ.get("WORKER_COUNT", "1")),
        help="requests run() may handle at once (maxConcurrentRequestsPerInstance)",
    )
    parser.add_argument(
        "--metrics-socket",
        help="serve the data collector's Prometheus /metrics on this Unix socket",
    )
    return parser.parse_args(argv)


async def main(args) -> None:
    # Bound before init() runs the script's code (which may start threads: see listen_unix).
    sock = listen_unix(args.socket) if args.socket else None
    config = Config.from_environment()
    collecting = config is not None and args.metrics_socket
    metrics_sock = listen_unix(args.metrics_socket) if collecting else None
    script = load(args)
    collector = Collector(config) if config is not None else None
    app = InferenceApp(script, collector=collector)
    metrics_server = None  # held: a server nothing refers to is collected, and closed
    if collector is not None:
        collector.start()
        if metrics_sock is not None:
            metrics_server = await serve(metrics_app(collector), None, None, 1, sock=metrics_sock)
    try:
        if sock is not None:
            server = await serve(app, None, None, args.concurrency, sock=sock)
            log.info("serving %s on unix:%s", args.entry_script, args.socket)
            print(f"READY unix:{args.socket}", flush=True)
            await serve_until_signalled(server, args.host, args.port, announce=False)
            return
        server = await serve(app, args.host, args.port, args.concurrency)
        log.info("serving %s on http://%s:%s", args.entry_script, args.host, args.port)
        await serve_until_signalled(server, args.host, args.port)
    finally:
        if metrics_server is not None:
            metrics_server.close()
            with contextlib.suppress(OSError):
                os.unlink(args.metrics_socket)
        if collector is not None:
            # What was scored before the stop is written (or counted as dropped).
            await asyncio.get_running_loop().run_in_executor(None, collector.stop)


def metrics_app(collector: Collector):
    """GET /metrics: the data collector's counters, on a socket of its own (the scoring
    socket takes every path the router forwards)."""

    def handle(request) -> Response:
        if request.path != "/metrics" or request.method not in ("GET", "HEAD"):
            return Response(404)
        content_type = ("content-type", "text/plain; version=0.0.4; charset=utf-8")
        return Response(200, collector.metrics().encode(), [content_type])

    return handle


def listen_unix(path: str) -> socket.socket:
    """A socket bound at ``path`` with mode 0600 from its creation (no moment in which
    another user could connect); a socket left there by a previous run is replaced."""
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # The umask is the process's: set only while no other thread can be creating files.
    previous = os.umask(0o177)
    try:
        sock.bind(path)
    finally:
        os.umask(previous)
    sock.setblocking(False)
    return sock


def load(args) -> UserScript:
    if args.model_dir:
        os.environ["AZUREML_MODEL_DIR"] = args.model_dir
    script = UserScript(args.entry_script)
    script.load()
    log.info("calling init()")
    script.init()
    log.info("init() finished")
    return script


def run(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = parse_args(argv)
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is in requirements; stay usable without
        runner = asyncio.run
    try:
        runner(main(args))
    except ScriptError as exc:
        # The traceback of the script's own error is what its author needs to see.
        log.error("the scoring script cannot start: %s", exc, exc_info=exc.__cause__ or exc)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(run())
