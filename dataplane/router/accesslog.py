"""The router's access log: one JSON line per scoring request.

Lines name the endpoint, the deployment that served, the status, the time taken and the
time queued, and the request id (to find the request in the replica's log). They carry no
bodies, no query strings and no headers beyond that, so no credential reaches the log.
Lines are kept as tuples, then formatted and written every FLUSH_SECONDS, not once per
request, in writes of at most PIPE_BUF bytes ending at a line's end, so several router
processes sharing one stdout or file never interleave within a line.
"""

from __future__ import annotations

import asyncio
import os
import select
import time
from json.encoder import encode_basestring_ascii

FLUSH_SECONDS = 0.5
_quote = encode_basestring_ascii


class AccessLog:
    def __init__(self, fd: int):
        self.fd = fd
        self.lines: list[tuple] = []

    def write(
        self,
        request,
        endpoint: str,
        deployment: str,
        status: int,
        seconds: float,
        queued_ms: str,
        request_id: str,
    ) -> None:
        # Kept as a tuple: the line is formatted when the batch is written.
        self.lines.append(
            (time.time(), request.method, request.path, endpoint, deployment, status, seconds,
             queued_ms, request_id)
        )  # fmt: skip

    @staticmethod
    def format(record: tuple) -> str:
        # By hand (json.dumps of a dict costs more than the rest of the line); the strings
        # a client controls are JSON-escaped.
        when, method, path, endpoint, deployment, status, seconds, queued_ms, request_id = record
        return (
            f'{{"time": {when:.3f}, "method": {_quote(method)}, '
            f'"path": {_quote(path)}, "endpoint": {_quote(endpoint)}, '
            f'"deployment": {_quote(deployment)}, "status": {status}, '
            f'"durationMs": {seconds * 1000:.2f}, "queueMs": {queued_ms or "null"}, '
            f'"requestId": {_quote(request_id)}}}'
        )

    def flush(self) -> None:
        lines, self.lines = self.lines, []
        chunk: list[bytes] = []
        size = 0
        for record in lines:
            data = self.format(record).encode() + b"\n"
            if size + len(data) > select.PIPE_BUF and chunk:
                os.write(self.fd, b"".join(chunk))
                chunk, size = [], 0
            chunk.append(data)
            size += len(data)
        if chunk:
            os.write(self.fd, b"".join(chunk))

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(FLUSH_SECONDS)
                self.flush()
        finally:
            self.flush()
