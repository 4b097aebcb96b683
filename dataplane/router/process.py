"""One serving process of the router: the routing table's feed, the app, the load sampler,
the usage and per-minute metrics reporters, the autoscaler's thread, the access log, and the
HTTP server on the shared port."""

from __future__ import annotations

import asyncio
import logging
import os

import prometheus_client

from dataplane.http import serve, serve_until_signalled
from dataplane.router.accesslog import AccessLog
from dataplane.router.app import RouterApp
from dataplane.router.autoscaler import Activator, Autoscaler, DecisionSender, LoadReporter
from dataplane.router.minutes import MinuteReporter
from dataplane.router.proxy import ClientConnection
from dataplane.router.quotas import UsageReporter
from dataplane.router.slots import SharedCounters
from dataplane.router.table import RoutingTable

log = logging.getLogger("weir.router")


async def main(args, counters: SharedCounters, ready_fd: int | None = None) -> None:
    """Serve until SIGTERM. Alone (``ready_fd`` None) it also serves /metrics and says
    READY; under the supervisor it writes one byte to ``ready_fd`` instead."""
    if args.metrics_port and ready_fd is None:
        prometheus_client.start_http_server(args.metrics_port, addr=args.host)
    table = RoutingTable(args.redis_url)
    stop_feed = table.start()
    # Serve as soon as the first snapshot is in (or after 5 s without Redis: an empty table
    # answers 404 until the feed comes back).
    await asyncio.get_running_loop().run_in_executor(None, table.loaded.wait, 5.0)
    access_log = None
    if args.access_log != "off":
        fd = 1 if args.access_log == "-" else os.open(args.access_log, APPEND, 0o640)
        access_log = AccessLog(fd)
    app = RouterApp(
        table,
        access_log=access_log,
        counters=counters,
        max_body=args.max_body,
        hold_max=args.hold_max,
        hold_seconds=args.hold_seconds,
    )
    app.activator = Activator(args.redis_url, DecisionSender(args.broker_url, args.queue), app.held)
    background = [
        asyncio.ensure_future(LoadReporter(app, args.redis_url).run()),
        asyncio.ensure_future(UsageReporter(app, args.redis_url).run()),
        asyncio.ensure_future(MinuteReporter(app, args.redis_url).run()),
    ]
    if access_log is not None:
        background.append(asyncio.ensure_future(access_log.run()))
    autoscaler = Autoscaler(
        table, args.redis_url, args.broker_url, args.queue, args.scale_down_delay
    )
    stop_autoscaler = autoscaler.start()
    server = await serve(
        app,
        args.host,
        args.port,
        concurrency=1,
        reuse_port=args.processes > 1,
        protocol=ClientConnection,
    )
    log.info("routing on http://%s:%s (pid %d)", args.host, args.port, os.getpid())
    if ready_fd is not None:
        os.write(ready_fd, b".")
    await serve_until_signalled(server, args.host, args.port, announce=ready_fd is None)
    stop_autoscaler.set()
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    stop_feed.set()


APPEND = os.O_WRONLY | os.O_CREAT | os.O_APPEND


def run(args, counters: SharedCounters, ready_fd: int | None = None) -> None:
    import uvloop

    uvloop.run(main(args, counters, ready_fd))
