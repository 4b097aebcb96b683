"""The router's side of a client connection: each request is routed as soon as its headers
are complete, and its body and its answer stream between client and replica.

A request the router refuses (unknown endpoint, no valid credential, over the size limit) is
answered from its headers and the connection closed: its body is never read. An accepted
body up to BUFFERED bytes is read whole before it is sent (so it can be copied to a shadow
deployment and sent again to another replica if the first cannot be reached); a larger one
is sent on as it arrives. Either way the router holds at most about BUFFERED bytes of a
request and a transport's worth of its answer: reading from one side pauses while the other
side's transport is over its high-water mark.

Requests on one connection are answered in order; a pipelined request waits (its body
buffered, reading paused) until the one before it has been answered.
"""

from __future__ import annotations

import asyncio
from collections import deque

import httptools

# Request bodies up to this many bytes are read whole before they are sent to a replica:
# they can be mirrored and retried. Larger ones are streamed, neither mirrored nor retried
# once their first byte went out. 1 MiB covers the JSON and image payloads models usually
# get, and bounds what one request can make the router hold.
BUFFERED = 1024 * 1024

# Azure's limit on a scoring request body (azureml-fe's 100 MB); --max-body changes it.
MAX_BODY = 100 * 1024 * 1024

# Why reading a client connection is paused (any of them pauses it).
PIPELINED = 1  # a request is waiting for the answer to the one before it
BODY_FULL = 2  # BUFFERED bytes held and nowhere yet to send them
UPSTREAM_FULL = 4  # the replica's transport is over its high-water mark

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
FINAL_CHUNK = b"0\r\n\r\n"


class Exchange:
    """One request on a client connection, and its answer."""

    __slots__ = (
        "client",
        "method",
        "path",
        "query",
        "headers",
        "host",
        "authorization",
        "deployment_header",
        "request_id",
        "expect",
        "length",
        "chunked",
        "keep_alive",
        "expects_body",
        "chunks",
        "buffered",
        "received",
        "complete",
        "sink",
        "sink_chunked",
        "timeout",
        "waiter",
        "then",
        "upstream",
        "started",
        "finished",
        "out_chunked",
        "head_out",
        "gone",
        "status",
        "endpoint",
        "deployment",
        "queued",
        "response_id",
        "began",
        "quota",
        "meter",
    )

    def __init__(self, client: ClientConnection, method: str, url: bytes, headers: list):
        self.client = client
        self.method = method
        parsed = httptools.parse_url(url)
        self.path = parsed.path.decode("latin-1")
        self.query = parsed.query.decode("latin-1") if parsed.query else ""
        self.headers = headers  # [(lower-cased name, value)], bytes
        self.host = self.authorization = self.deployment_header = self.request_id = ""
        self.expect = False
        self.length: int | None = None
        self.chunked = False
        for name, value in headers:
            if name == b"host":
                self.host = value.decode("latin-1")
            elif name == b"authorization":
                self.authorization = value.decode("latin-1")
            elif name == b"content-length":
                self.length = int(value)
            elif name == b"azureml-model-deployment":
                self.deployment_header = value.decode("latin-1")
            elif name == b"x-request-id":
                self.request_id = value.decode("latin-1")
            elif name == b"transfer-encoding":
                self.chunked = b"chunked" in value.lower()
            elif name == b"expect":
                self.expect = value.lower() == b"100-continue"
        self.keep_alive = True
        self.expects_body = self.chunked or bool(self.length)
        self.chunks: list[bytes] = []
        self.buffered = self.received = 0
        self.complete = not self.expects_body
        self.sink = None  # the replica connection the body streams to
        self.sink_chunked = False
        self.timeout = 0.0
        self.waiter: asyncio.Future | None = None
        self.then = None  # called once the body is whole, too large to keep, or gone
        self.upstream = None  # the replica connection the answer streams from
        self.started = self.finished = self.out_chunked = self.gone = False
        self.head_out = b""  # an answer's head not written yet: it goes with the body
        self.status = 0
        self.endpoint = self.deployment = self.queued = self.response_id = ""
        self.began = 0.0
        self.quota = None  # a concurrency place the app holds for this request
        self.meter = None  # the per-minute metrics of the deployment it was routed to

    # -- the request body -----------------------------------------------------------------
    def on_body(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.received > self.client.max_body:
            self.client.app.too_large(self)
            return
        sink = self.sink
        if sink is not None:
            if sink.transport is None:
                return
            if self.sink_chunked:
                sink.transport.write(b"%x\r\n" % len(chunk))
                sink.transport.write(chunk)
                sink.transport.write(b"\r\n")
            else:
                sink.transport.write(chunk)
            return
        self.chunks.append(chunk)
        self.buffered += len(chunk)
        if self.buffered >= BUFFERED:
            self.client.pause(BODY_FULL)
            self._wake()

    def on_complete(self) -> None:
        self.complete = True
        sink = self.sink
        if sink is not None:
            if self.sink_chunked and sink.transport is not None:
                sink.transport.write(FINAL_CHUNK)
            sink.arm(self.timeout)
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)
        then = self.then
        if then is not None:
            self.then = None
            then()

    def when_read(self, then) -> None:
        """Call ``then()`` once the body is whole, or larger than BUFFERED, or the client
        is gone (at once if that is known now)."""
        if self.complete or self.gone or (self.length or 0) > BUFFERED:
            then()
        else:
            self.then = then

    def body(self) -> bytes:
        """The body read whole (``complete``)."""
        return b"".join(self.chunks) if len(self.chunks) != 1 else self.chunks[0]

    async def whole_body(self) -> bytes | None:
        """The body, when it is at most BUFFERED bytes; None when it is larger (then it
        is to be streamed with ``attach``). Waits until one or the other is known."""
        if self.expect:
            self.expect = False
            self.client.write(CONTINUE)
        if not self.complete and (self.length is None or self.length <= BUFFERED):
            while not (self.complete or self.gone or self.buffered >= BUFFERED):
                self.waiter = asyncio.get_running_loop().create_future()
                await self.waiter
            self.waiter = None
        return self.body() if self.complete else None

    def body_head(self) -> bytes:
        """How a streamed body is framed to the replica (a header line)."""
        if self.length is not None:
            return b"content-length: %d\r\n" % self.length
        return b"transfer-encoding: chunked\r\n"

    def attach(self, connection, timeout: float) -> None:
        """Stream the body to ``connection``: what is held now, then the rest as it comes
        (its head is already sent). The replica's timeout starts once the body is sent."""
        self.sink, self.timeout = connection, timeout
        self.sink_chunked = self.length is None
        connection.source = self
        chunks, self.chunks, self.buffered = self.chunks, [], 0
        received, self.received = self.received, 0
        for chunk in chunks:
            self.on_body(chunk)
        self.received = received
        if self.complete:
            self.on_complete()
        self.client.resume(BODY_FULL)

    def pause_body(self) -> None:
        self.client.pause(UPSTREAM_FULL)

    def resume_body(self) -> None:
        self.client.resume(UPSTREAM_FULL)

    # -- the answer -----------------------------------------------------------------------
    def respond(self, status: int, head: bytes, body: bytes) -> None:
        """Answer at once: ``head`` is the header lines (without status line, length and
        connection); a refusal before the body was read also closes the connection."""
        if self.started or self.gone:
            return
        self.started = True
        self.status = status
        keep = self.keep_alive and self.complete and not self.client.stopping
        self.keep_alive = keep
        self.client.write(
            b"".join(
                (
                    _status_line(status),
                    head,
                    b"content-length: %d\r\n" % len(body),
                    b"\r\n" if keep else b"connection: close\r\n\r\n",
                    b"" if self.method == "HEAD" else body,
                )
            )
        )
        self.end()

    def start(self, status: int, head: bytes, length: int | None) -> None:
        """Begin a streamed answer; ``length`` None sends it chunked. The head is written
        with the first piece of the body (one system call for a small answer)."""
        self.started = True
        self.status = status
        if self.client.stopping:
            self.keep_alive = False
        if length is None:
            self.out_chunked = True
            framing = b"transfer-encoding: chunked\r\n"
        else:
            framing = b"content-length: %d\r\n" % length
        close = b"\r\n" if self.keep_alive else b"connection: close\r\n\r\n"
        self.head_out = _status_line(status) + head + framing + close

    def write(self, chunk: bytes) -> None:
        if self.out_chunked:
            chunk = b"%x\r\n%s\r\n" % (len(chunk), chunk)
        if self.head_out:
            self.client.writelines((self.head_out, chunk))
            self.head_out = b""
        else:
            self.client.write(chunk)

    def end(self) -> None:
        if self.finished:
            return
        if self.out_chunked:
            self.client.write(self.head_out + FINAL_CHUNK)
        elif self.head_out:
            self.client.write(self.head_out)
        self.head_out = b""
        self.finished = True
        self.client.app.record(self)
        self.client.answered(self)

    def abort(self) -> None:
        """The answer cannot be completed (or started): drop the connection."""
        if not self.finished:
            self.finished = True
            if not self.gone:
                self.client.app.record(self)
        self.gone = True
        self.client.close()


_STATUS_LINES: dict[int, bytes] = {}


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        from dataplane.http import REASONS

        line = _STATUS_LINES[status] = b"HTTP/1.1 %d %s\r\n" % (
            status,
            REASONS.get(status, "Unknown").encode(),
        )
    return line


class ClientConnection(asyncio.Protocol):
    """One client connection to the router."""

    def __init__(self, app, server):
        self.app = app  # dispatch(exchange), too_large(exchange), record(exchange), max_body
        self.server = server  # its ``connections`` set: for a graceful stop
        self.max_body = app.max_body
        self.parser = httptools.HttpRequestParser(self)
        self.transport = None
        self.exchange: Exchange | None = None  # the request being read
        self.queue: deque[Exchange] = deque()  # requests not answered yet, in order
        self.paused = 0
        self.stopping = False
        self.in_head = False
        self._url = b""
        self._headers: list = []

    # -- asyncio ------------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        self.server.connections.add(self)
        if self.server.draining:
            self.stop()

    def connection_lost(self, exc):
        self.transport = None
        self.server.connections.discard(self)
        for exchange in self.queue:
            exchange.gone = True
            exchange._wake()
            if exchange.began and not exchange.finished:
                exchange.finished = True
                self.app.record(exchange)  # as 499: the client went away
            for connection in (exchange.sink, exchange.upstream):
                if connection is not None and connection.transport is not None:
                    connection.transport.abort()
        self.queue.clear()

    def data_received(self, data: bytes):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._bad(b'{"message": "Protocol upgrades are not supported."}')
        except httptools.HttpParserError:
            self._bad(b'{"message": "Malformed HTTP request"}')

    def pause_writing(self):
        if self.queue and self.queue[0].upstream is not None:
            self.queue[0].upstream.pause()

    def resume_writing(self):
        if self.queue and self.queue[0].upstream is not None:
            self.queue[0].upstream.resume()

    # -- httptools ----------------------------------------------------------------------
    def on_message_begin(self):
        self._url, self._headers, self.in_head = b"", [], True

    def on_url(self, url: bytes):
        self._url += url

    def on_header(self, name: bytes, value: bytes):
        self._headers.append((name.lower(), value))

    def on_headers_complete(self):
        self.in_head = False
        if self.transport is None:
            return
        exchange = Exchange(self, self.parser.get_method().decode(), self._url, self._headers)
        exchange.keep_alive = self.parser.should_keep_alive()
        self.exchange = exchange
        self.queue.append(exchange)
        if len(self.queue) == 1:
            self.app.dispatch(exchange)
        else:
            self.pause(PIPELINED)

    def on_body(self, body: bytes):
        exchange = self.exchange
        if exchange is not None and not exchange.gone and self.transport is not None:
            exchange.on_body(body)

    def on_message_complete(self):
        exchange, self.exchange = self.exchange, None
        if exchange is not None and not exchange.gone and self.transport is not None:
            # Reading goes on (pausing costs system calls each time); a pipelined request
            # that comes meanwhile pauses it until this one is answered.
            exchange.on_complete()

    # -- use ------------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)

    def writelines(self, data) -> None:
        if self.transport is not None:
            self.transport.writelines(data)

    def pause(self, reason: int) -> None:
        if not self.paused and self.transport is not None:
            self.transport.pause_reading()
        self.paused |= reason

    def resume(self, reason: int) -> None:
        if self.paused & reason:
            self.paused &= ~reason
            if not self.paused and self.transport is not None:
                self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.connection_lost(None)

    def answered(self, exchange: Exchange) -> None:
        """``exchange``'s answer is written: go on with the next request, or close."""
        if self.queue and self.queue[0] is exchange:
            self.queue.popleft()
        if not (exchange.keep_alive and exchange.complete) or self.transport is None:
            # An answer before the body was read whole: the rest of it is not read.
            self.close()
            return
        if self.queue:
            self.app.dispatch(self.queue[0])
        elif self.stopping and not self.in_head:
            self.close()
            return
        self.resume(PIPELINED)

    def stop(self) -> None:
        """A graceful stop: close now if idle, else after the answer in progress."""
        self.stopping = True
        if not self.queue and not self.in_head:
            self.close()

    def _bad(self, body: bytes) -> None:
        if self.queue:  # an answer is in progress: it cannot be followed by another
            self.close()
            return
        head = b"content-type: application/json\r\n"
        self.write(
            _status_line(400)
            + head
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            + body
        )
        self.close()
