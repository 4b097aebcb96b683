"""Replica addresses as the agent reports them: ``unix:/abs/path.sock`` for the local
agent's replicas (a Unix socket in a directory only Weir's user can open), ``host:port``
for pods and for servers started by hand."""

from __future__ import annotations

import http.client
import socket

UNIX = "unix:"


def unix_address(path: str) -> str:
    return f"{UNIX}{path}"


def socket_path(address: str) -> str | None:
    """The socket's path for a ``unix:`` address, else None."""
    return address[len(UNIX) :] if address.startswith(UNIX) else None


class ReplicaConnection(http.client.HTTPConnection):
    """An ``http.client`` connection to a replica address of either kind."""

    def __init__(self, address: str, timeout: float):
        self.socket_path = socket_path(address)
        if self.socket_path is None:
            host, port = address.rsplit(":", 1)
            super().__init__(host, int(port), timeout=timeout)
        else:
            super().__init__("localhost", timeout=timeout)

    def connect(self):
        if self.socket_path is None:
            return super().connect()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock
