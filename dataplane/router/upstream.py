"""A keep-alive HTTP/1.1 client to replicas: one asyncio Protocol per connection (no streams,
no task per request), with a pool of idle connections per address.

A response is handed to a sink as it arrives (``start``, ``data``, ``end``), so a large
answer passes through without being held; the sink may pause the connection's reading
(``pause``/``resume``) while the client's transport is full. A request body being streamed
is paused in turn, through ``source``, while this connection's transport is full.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict

import httptools


class UpstreamError(Exception):
    """The request surely did not reach the replica (connect failed)."""


class UpstreamTimeout(Exception):
    """The replica did not answer within the request timeout."""


class UpstreamBroken(Exception):
    """The replica sent part of a response and then dropped the connection."""


class UpstreamClosed(Exception):
    """The connection closed before any byte of a response (the replica stopped, was
    killed, or closed an idle keep-alive connection as the request went out)."""


class Collected:
    """A sink that keeps a whole response, up to ``limit`` bytes of body (a shadow
    deployment's answer, to compare); past it the body is dropped and ``truncated`` set."""

    __slots__ = ("status", "headers", "body", "size", "limit", "truncated")

    def __init__(self, limit: int):
        self.status, self.headers, self.body, self.size = 0, [], [], 0
        self.limit = limit
        self.truncated = False

    def start(self, status: int, headers: list, length: int | None) -> None:
        self.status, self.headers = status, headers

    def data(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size <= self.limit:
            self.body.append(chunk)
        elif not self.truncated:
            self.truncated, self.body = True, []

    def end(self) -> None:
        pass


class Connection(asyncio.Protocol):
    """One connection to a replica, answering one request at a time."""

    def __init__(self):
        # Kept: asyncio.get_running_loop() costs a getpid() system call on each call.
        self.loop = asyncio.get_running_loop()
        self.transport = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.sink = None
        self.source = None  # what to pause while our transport is full (a request body)
        self.received = False  # a byte of the current response arrived
        self.started = False  # the sink has the response's status and headers
        self.keep_alive = False
        self.closed = False
        self.timer = None
        self.head = False
        self._headers: list = []

    # -- asyncio ------------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes):
        self.received = True
        if self.parser is None:
            return  # after an answer to HEAD: the connection is closing
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.fail(UpstreamBroken(f"bad response: {exc}"))
            self.transport.close()

    def connection_lost(self, exc):
        self.closed = True
        self.fail(UpstreamBroken("dropped mid-response") if self.received else UpstreamClosed())

    def pause_writing(self):
        if self.source is not None:
            self.source.pause_body()

    def resume_writing(self):
        if self.source is not None:
            self.source.resume_body()

    # -- httptools ----------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes):
        self._headers.append((name, value))

    def on_headers_complete(self):
        status = self.parser.get_status_code()
        length = None
        for name, value in self._headers:
            if len(name) == 14 and name.lower() == b"content-length":
                length = int(value)
        self.started = True
        self.sink.start(status, self._headers, length)
        if self.head:
            # An answer to HEAD has no body, whatever its content-length says; httptools
            # would wait for one, so the answer ends here and the connection is not reused.
            self.parser = None
            self.keep_alive = False
            self._complete()

    def on_body(self, body: bytes):
        self.sink.data(body)

    def on_message_complete(self):
        # Only valid now: after the callback httptools has already reset its state.
        self.keep_alive = self.parser.should_keep_alive()
        self._complete()

    def _complete(self):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self.sink.end()
            waiter.set_result(None)

    # -- use ------------------------------------------------------------------------------
    def fail(self, exc: Exception):
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def begin(self, sink, payload: bytes, head: bool = False) -> asyncio.Future:
        """Send ``payload`` (the request head, and its body when kept whole); the future
        is done when the response has ended at ``sink``. ``head``: the request is a HEAD,
        so its answer has no body."""
        self.head = head
        self.waiter = self.loop.create_future()
        self.sink, self.received, self.started, self._headers = sink, False, False, []
        self.transport.write(payload)
        return self.waiter

    def arm(self, timeout: float) -> None:
        """The request is all sent: the replica has ``timeout`` seconds to answer."""
        if self.waiter is not None and not self.waiter.done():
            # A timer on the loop rather than asyncio.timeout(): no task lookup, no context.
            self.timer = self.loop.call_later(timeout, self.fail, UpstreamTimeout())

    def pause(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()


class Upstream:
    def __init__(self):
        self.idle: dict[str, list[Connection]] = defaultdict(list)

    def pooled(self, address: str) -> Connection | None:
        """An idle keep-alive connection to ``address``, or None."""
        pool = self.idle.get(address)
        while pool:
            connection = pool.pop()
            if not connection.closed:
                return connection
        return None

    async def connect(self, address: str, timeout: float) -> Connection:
        try:
            return await _connect(address, timeout)
        except (OSError, TimeoutError):
            raise UpstreamError(address) from None

    def done(self, address: str, connection: Connection, reusable: bool) -> None:
        """The exchange on ``connection`` is over: pool it or close it."""
        connection.sink = connection.source = connection.waiter = None
        if reusable and connection.keep_alive and not connection.closed:
            connection.resume()  # it may have been paused for a client slow to read
            self.idle[address].append(connection)
        elif connection.transport is not None:
            connection.transport.close()


async def _connect(address: str, timeout: float) -> Connection:
    """``unix:/path.sock`` (the local agent's replicas) or ``host:port`` (pods)."""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        if address.startswith("unix:"):
            _, connection = await loop.create_unix_connection(Connection, address[5:])
        else:
            host, port = address.rsplit(":", 1)
            _, connection = await loop.create_connection(Connection, host, int(port))
    return connection
