"""A lean HTTP/1.1 server transport for the data plane: asyncio Protocol + httptools,
keep-alive, pipelining, and a graceful stop.

Requests on one connection are answered in order. A synchronous handler runs inline on the
event loop (concurrency 1: no thread hand-off per request) or on a thread pool; an async
handler runs as a task per request, connections still answering in order. The router brings
its own protocol (``protocol``): it streams bodies instead of reading them whole.

On SIGTERM the server stops accepting, closes idle keep-alive connections, lets requests in
progress finish (their answers say ``connection: close``) for up to a grace period, then
exits. asyncio's ``Server.wait_closed()`` does not wait for connections on Python 3.11, so
``Listener`` keeps the set of open connections itself.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus

import httptools

REASONS = {status.value: status.phrase for status in HTTPStatus}
# How long a stopping server lets requests in progress finish (WEIR_DRAIN_SECONDS).
DRAIN_SECONDS = 30.0

log = logging.getLogger("weir.http")


class Headers(dict):
    """Request headers, looked up without regard to case."""

    def __init__(self, pairs):
        super().__init__()
        for name, value in pairs:
            super().__setitem__(name.lower(), value)

    def __getitem__(self, name):
        return super().__getitem__(name.lower())

    def get(self, name, default=None):
        return super().get(name.lower(), default)

    def __contains__(self, name):
        return super().__contains__(name.lower())


class Request:
    __slots__ = ("method", "path", "query", "headers", "body", "keep_alive", "too_large")

    def __init__(self, method: str, url: bytes, headers: Headers, body: bytes, keep_alive: bool):
        parsed = httptools.parse_url(url)
        self.method = method
        self.path = parsed.path.decode("latin-1")
        self.query = (parsed.query or b"").decode("latin-1")
        self.headers = headers
        self.body = body
        self.keep_alive = keep_alive
        self.too_large = False

    @property
    def is_json(self) -> bool:
        mimetype = self.headers.get("content-type", "").split(";")[0].strip()
        return mimetype == "application/json" or mimetype.endswith("+json")


class Response:
    __slots__ = ("status", "headers", "body")

    def __init__(self, status: int, body: bytes = b"", headers: list | None = None):
        self.status = status
        self.body = body
        self.headers = headers or []

    def encode(self, keep_alive: bool, head: bool = False) -> bytes:
        lines = [f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Unknown')}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in self.headers]
        lines.append(f"content-length: {len(self.body)}\r\n")
        if not keep_alive:
            lines.append("connection: close\r\n")
        lines.append("\r\n")
        head_bytes = "".join(lines).encode("latin-1")
        return head_bytes if head else head_bytes + self.body


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    # Bodies past this are not kept: the request is answered 413 once fully read.
    max_body: int | None = None

    def __init__(self, handle, pool: ThreadPoolExecutor | None, listener: Listener | None = None):
        self.listener = listener
        self.stopping = False
        self.in_message = False
        self.handle = handle  # Request -> Response (or an awaitable of one); must not raise
        self.pool = pool
        # A coroutine function, or an object whose __call__ is one (the router's app).
        call = handle if asyncio.iscoroutinefunction(handle) else type(handle).__call__
        self.is_async = asyncio.iscoroutinefunction(call)
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.pending: deque[Request] = deque()
        self.busy = False
        self._url, self._headers, self._body = b"", [], []
        self._body_size = 0

    # -- asyncio callbacks ----------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        if self.listener is not None:
            self.listener.connections.add(self)
            if self.listener.draining:
                self.stop()

    def connection_lost(self, exc):
        self.transport = None
        if self.listener is not None:
            self.listener.connections.discard(self)

    def stop(self) -> None:
        """A graceful stop: close now if idle, else once the requests read are answered."""
        self.stopping = True
        if not self.busy and not self.pending and not self.in_message and self.transport:
            self.transport.close()
            self.transport = None

    def data_received(self, data: bytes):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._send(Response(400, b'{"message": "Malformed HTTP request"}'), False, False)

    # -- httptools callbacks --------------------------------------------------------------
    def on_message_begin(self):
        self.in_message = True
        self._url, self._headers, self._body = b"", [], []
        self._body_size = 0

    def on_url(self, url: bytes):
        self._url += url

    def on_header(self, name: bytes, value: bytes):
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes):
        self._body_size += len(body)
        if self.max_body is None or self._body_size <= self.max_body:
            self._body.append(body)
        else:
            self._body = []

    def on_message_complete(self):
        self.in_message = False
        request = Request(
            self.parser.get_method().decode(),
            self._url,
            Headers(self._headers),
            b"".join(self._body),
            self.parser.should_keep_alive(),
        )
        request.too_large = self.max_body is not None and self._body_size > self.max_body
        if (self.pool is None and not self.is_async or request.too_large) and not self.busy:
            self._send(self._answer(request), request.keep_alive, request.method == "HEAD")
            return
        self.pending.append(request)
        if not self.busy:
            self._next()

    # -- responding -----------------------------------------------------------------------
    def _answer(self, request: Request) -> Response:
        if request.too_large:
            message = f'{{"message": "The request body is larger than {self.max_body} bytes."}}'
            return Response(413, message.encode(), [("content-type", "application/json")])
        return self.handle(request)

    def _next(self):
        if not self.pending or self.transport is None:
            self.busy = False
            if self.transport is not None:
                if self.stopping and not self.in_message:
                    self.transport.close()
                    self.transport = None
                else:
                    self.transport.resume_reading()
            return
        self.busy = True
        self.transport.pause_reading()
        request = self.pending.popleft()
        if request.too_large:
            self._send(self._answer(request), request.keep_alive, False)
            self._next()
            return
        if self.is_async:
            future = asyncio.ensure_future(self.handle(request))
        else:
            future = asyncio.get_running_loop().run_in_executor(self.pool, self.handle, request)
        future.add_done_callback(lambda done: self._finish(request, done))

    def _finish(self, request: Request, done):
        self._send(done.result(), request.keep_alive, request.method == "HEAD")
        self._next()

    def _send(self, response: Response, keep_alive: bool, head: bool):
        if self.transport is None:
            return
        if self.stopping and not self.pending:
            keep_alive = False
        self.transport.write(response.encode(keep_alive, head))
        if not keep_alive:
            self.transport.close()
            self.transport = None


class Listener:
    """A listening server and the connections it accepted (for a graceful stop)."""

    def __init__(self):
        self.server: asyncio.AbstractServer | None = None
        self.connections: set = set()
        self.draining = False

    def close(self) -> None:
        self.server.close()

    async def wait_closed(self) -> None:
        await self.server.wait_closed()

    async def drain(self, grace: float) -> None:
        """Stop accepting (new connections are refused), close idle connections, wait up
        to ``grace`` seconds for the others to finish their requests, then drop them."""
        self.draining = True
        self.server.close()
        for connection in list(self.connections):
            connection.stop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.connections and loop.time() < deadline:
            await asyncio.sleep(0.02)
        if self.connections:
            busy = len(self.connections)
            log.warning("%d connection(s) still busy after %g s; closing them", busy, grace)
            for connection in list(self.connections):
                if connection.transport is not None:
                    connection.transport.abort()
        await self.server.wait_closed()


async def serve(
    handle,
    host: str,
    port: int,
    concurrency: int,
    sock=None,
    max_body: int | None = None,
    reuse_port: bool = False,
    protocol=None,
) -> Listener:
    """Listen on host:port (or ``sock``). ``protocol(handle, listener)``, when given, makes
    each connection's protocol instead of HttpProtocol."""
    pool = ThreadPoolExecutor(concurrency, "score") if concurrency > 1 else None
    loop = asyncio.get_running_loop()
    listener = Listener()

    def default():
        connection = HttpProtocol(handle, pool, listener)
        connection.max_body = max_body
        return connection

    def custom():
        return protocol(handle, listener)

    listener.server = await loop.create_server(
        default if protocol is None else custom,
        host=None if sock else host,
        port=None if sock else port,
        sock=sock,
        reuse_address=True,
        reuse_port=reuse_port or None,
        backlog=1024,
    )
    return listener


async def serve_until_signalled(
    server: Listener,
    host: str,
    port: int,
    announce: bool = True,
    grace: float | None = None,
) -> None:
    """Announce readiness (``READY http://host:port`` on stdout, which supervisors wait
    for), serve until SIGTERM or SIGINT, then stop gracefully: refuse new connections,
    close idle ones, let requests in progress finish within ``grace`` seconds
    (``WEIR_DRAIN_SECONDS``, 30 by default)."""
    if grace is None:
        grace = float(os.environ.get("WEIR_DRAIN_SECONDS", DRAIN_SECONDS))
    if announce:
        print(f"READY http://{host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.drain(grace)
