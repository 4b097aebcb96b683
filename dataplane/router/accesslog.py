"""The router's access log: one JSON line per scoring request.

Lines name the endpoint, the deployment that served, the status, the time taken and the
time queued, and the request id (to find the request in the replica's log). They carry no
bodies, no query strings and no headers beyond that, so no credential reaches the log.
Lines are buffered and written every FLUSH_SECONDS, not once per request, in writes of at
most PIPE_BUF bytes ending at a line's end, so several router processes sharing one stdout
or file never interleave within a line.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import time

FLUSH_SECONDS = 0.5


class AccessLog:
    def __init__(self, fd: int):
        self.fd = fd
        self.lines: list[str] = []

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
        self.lines.append(
            json.dumps(
                {
                    "time": round(time.time(), 3),
                    "method": request.method,
                    "path": request.path,
                    "endpoint": endpoint,
                    "deployment": deployment,
                    "status": status,
                    "durationMs": round(seconds * 1000, 2),
                    "queueMs": float(queued_ms) if queued_ms else None,
                    "requestId": request_id,
                }
            )
        )

    def flush(self) -> None:
        lines, self.lines = self.lines, []
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            data = line.encode() + b"\n"
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
