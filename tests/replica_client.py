"""HTTP to a replica at an address as the agent reports it (``unix:/path.sock`` or
``host:port``): what the tests use where they reach a replica without the router."""

from __future__ import annotations

import json as jsonlib

from dataplane.agent.address import ReplicaConnection


class Answer:
    def __init__(self, status_code: int, headers: dict, content: bytes):
        self.status_code = status_code
        self.headers = headers
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode()

    def json(self):
        return jsonlib.loads(self.content)


def post(address: str, path: str = "/score", *, data=None, json=None, timeout: float = 10):
    """POST to the replica; OSError (refused, no such socket) when it cannot be reached."""
    headers = {}
    if json is not None:
        data, headers["content-type"] = jsonlib.dumps(json), "application/json"
    body = data.encode() if isinstance(data, str) else (data or b"")
    connection = ReplicaConnection(address, timeout=timeout)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()
