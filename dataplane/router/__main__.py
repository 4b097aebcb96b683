"""``python -m dataplane.router --port 8080``: serve scoring URIs from the routing table."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

import prometheus_client

from dataplane.http import serve, serve_until_signalled
from dataplane.router.accesslog import AccessLog
from dataplane.router.app import MAX_BODY, RouterApp
from dataplane.router.autoscaler import Autoscaler, LoadReporter
from dataplane.router.table import RoutingTable

log = logging.getLogger("weir.router")


def parse_args(argv=None):
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m dataplane.router")
    parser.add_argument("--host", default=env("WEIR_ROUTER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("WEIR_SCORING_PORT", "8080")))
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(env("WEIR_ROUTER_METRICS_PORT", "0")),
        help="serve Prometheus /metrics on this port (0: not served)",
    )
    parser.add_argument(
        "--redis-url",
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
        default=env("CELERY_BROKER_URL") or "redis://localhost:6379/0",
        help="where the autoscaler sends its decisions (the workers' Celery broker)",
    )
    parser.add_argument("--queue", default=env("WEIR_QUEUE", "provision"))
    parser.add_argument(
        "--scale-down-delay",
        type=float,
        default=float(env("WEIR_SCALE_DOWN_DELAY", "60")),
        help="seconds of low load before the autoscaler removes replicas",
    )
    return parser.parse_args(argv)


async def main(args) -> None:
    if args.metrics_port:
        prometheus_client.start_http_server(args.metrics_port, addr=args.host)
    table = RoutingTable(args.redis_url)
    stop_feed = table.start()
    # Serve as soon as the first snapshot is in (or after 5 s without Redis: an empty table
    # answers 404 until the feed comes back).
    await asyncio.get_running_loop().run_in_executor(None, table.loaded.wait, 5.0)
    access_log = None
    if args.access_log != "off":
        stream = sys.stdout if args.access_log == "-" else open(args.access_log, "a")  # noqa: SIM115
        access_log = AccessLog(stream)
    app = RouterApp(table, access_log=access_log)
    background = [asyncio.ensure_future(LoadReporter(app, args.redis_url).run())]
    if access_log is not None:
        background.append(asyncio.ensure_future(access_log.run()))
    autoscaler = Autoscaler(
        table, args.redis_url, args.broker_url, args.queue, args.scale_down_delay
    )
    stop_autoscaler = autoscaler.start()
    server = await serve(app, args.host, args.port, concurrency=1, max_body=MAX_BODY)
    log.info("routing on http://%s:%s", args.host, args.port)
    await serve_until_signalled(server, args.host, args.port)
    stop_autoscaler.set()
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    stop_feed.set()


def run(argv=None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        import uvloop

        uvloop.run(main(parse_args(argv)))
    except ImportError:  # pragma: no cover
        asyncio.run(main(parse_args(argv)))


if __name__ == "__main__":
    run()
