"""A keep-alive HTTP/1.1 client to replicas: one asyncio Protocol per connection (no streams,
no task per request), with a pool of idle connections per address."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import httptools


class UpstreamError(Exception):
    """The request surely did not reach the replica (connect or write failed)."""


class UpstreamTimeout(Exception):
    """The replica did not answer within the request timeout."""


class UpstreamBroken(Exception):
    """The replica took the request and then dropped the connection (it may have crashed)."""


class _Closed(Exception):
    """The connection closed before any byte of a response."""


class Connection(asyncio.Protocol):
    """One connection to a replica, answering one request at a time."""

    def __init__(self):
        self.transport = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.received = False
        self.keep_alive = False
        self.closed = False
        self._headers: list = []
        self._body: list = []

    # -- asyncio ------------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes):
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamBroken(f"bad response: {exc}"))

    def connection_lost(self, exc):
        self.closed = True
        self._fail(UpstreamBroken("dropped mid-response") if self.received else _Closed())

    # -- httptools ----------------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes):
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes):
        self._body.append(body)

    def on_message_complete(self):
        # Only valid now: after the callback httptools has already reset its state.
        self.keep_alive = self.parser.should_keep_alive()
        if self.waiter is not None and not self.waiter.done():
            result = (self.parser.get_status_code(), self._headers, b"".join(self._body))
            self.waiter.set_result(result)

    # -- use ------------------------------------------------------------------------------
    def _fail(self, exc: Exception):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    async def send(self, payload: bytes, timeout: float):
        loop = asyncio.get_running_loop()
        self.waiter = waiter = loop.create_future()
        self.received, self._headers, self._body = False, [], []
        self.transport.write(payload)
        # A timer on the loop rather than asyncio.timeout(): no task lookup, no context.
        timer = loop.call_later(timeout, self._fail, TimeoutError())
        try:
            return await waiter
        finally:
            timer.cancel()


class Upstream:
    def __init__(self):
        self.idle: dict[str, list[Connection]] = defaultdict(list)

    async def request(
        self, address: str, method: str, path: str, headers: list, body: bytes, timeout: float
    ) -> tuple[int, list, bytes]:
        """Send one request; UpstreamError when it surely did not reach the replica."""
        payload = _encode(method, path, address, headers, body)
        for attempt in range(2):
            pool = self.idle[address]
            while pool and pool[-1].closed:
                pool.pop()
            reused = bool(pool)
            try:
                connection = pool.pop() if reused else await _connect(address, timeout)
            except (OSError, TimeoutError):
                raise UpstreamError(address) from None
            try:
                result = await connection.send(payload, timeout)
            except TimeoutError:
                connection.transport.close()  # its state is unknown: never reuse it
                raise UpstreamTimeout(address) from None
            except _Closed:
                if reused and attempt == 0:
                    continue  # a pooled connection the replica had closed: retry on a new one
                # A fresh connection closed after taking the request: it may have run.
                raise UpstreamBroken(address) from None
            if connection.keep_alive and not connection.closed:
                pool.append(connection)
            else:
                connection.transport.close()
            return result
        raise UpstreamError(address)


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


def _encode(method: str, path: str, address: str, headers: list, body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1\r\nhost: {address}\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in headers]
    lines.append(f"content-length: {len(body)}\r\n\r\n")
    return "".join(lines).encode("latin-1") + body
