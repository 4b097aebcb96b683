"""A keep-alive HTTP/1.1 client to replicas, with a pool of idle connections per address."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import httptools


class UpstreamError(Exception):
    """The request surely did not reach the replica (connect or write failed)."""


class UpstreamTimeout(Exception):
    """The replica did not answer within the request timeout."""


class _Parsed:
    def __init__(self):
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.done = False
        self.keep_alive = False
        self.parser = None

    def on_header(self, name: bytes, value: bytes):
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes):
        self.body.append(body)

    def on_message_complete(self):
        # Only valid now: after the callback httptools has already reset its state.
        self.keep_alive = self.parser.should_keep_alive()
        self.done = True


class Upstream:
    def __init__(self):
        self.idle: dict[str, list] = defaultdict(list)

    async def request(
        self, address: str, method: str, path: str, headers: list, body: bytes, timeout: float
    ) -> tuple[int, list, bytes]:
        """Send one request; UpstreamError when it surely did not reach the replica."""
        payload = _encode(method, path, address, headers, body)
        for attempt in range(2):
            reused = bool(self.idle[address])
            writer = None
            try:
                reader, writer = (
                    self.idle[address].pop() if reused else await _connect(address, timeout)
                )
                writer.write(payload)
                async with asyncio.timeout(timeout):  # no extra task per request
                    return await self._read(address, reader, writer)
            except TimeoutError:
                if writer is not None:
                    writer.close()  # its state is unknown: never reuse it
                    raise UpstreamTimeout(address) from None
                raise UpstreamError(address) from None  # could not even connect in time
            except _Closed:
                if reused and attempt == 0:
                    continue  # a pooled connection the replica had closed: retry on a new one
                # A fresh connection closed after taking the request: it may have run.
                raise UpstreamBroken(address) from None
            except OSError:
                raise UpstreamError(address) from None
        raise UpstreamError(address)

    async def _read(self, address, reader, writer):
        parsed = _Parsed()
        parser = parsed.parser = httptools.HttpResponseParser(parsed)
        received = False
        while not parsed.done:
            try:
                data = await reader.read(65536)
            except ConnectionError:
                data = b""
            if not data:
                writer.close()
                if received:
                    raise UpstreamBroken("the replica closed the connection mid-response")
                raise _Closed()
            received = True
            parser.feed_data(data)
        if parsed.keep_alive:
            self.idle[address].append((reader, writer))
        else:
            writer.close()
        return parser.get_status_code(), parsed.headers, b"".join(parsed.body)


class UpstreamBroken(Exception):
    """The replica took the request and then dropped the connection (it may have crashed)."""


class _Closed(Exception):
    """The connection closed before any byte of a response."""


async def _connect(address: str, timeout: float):
    host, port = address.rsplit(":", 1)
    return await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)


def _encode(method: str, path: str, address: str, headers: list, body: bytes) -> bytes:
    lines = [f"{method} {path} HTTP/1.1\r\nhost: {address}\r\n"]
    lines += [f"{name}: {value}\r\n" for name, value in headers]
    lines.append(f"content-length: {len(body)}\r\n\r\n")
    return "".join(lines).encode("latin-1") + body
