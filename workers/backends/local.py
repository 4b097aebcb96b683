"""The local backend: replicas are processes on this machine, run by ``dataplane.agent``.

The worker and the agent share a state directory: the backend writes the desired spec, the
agent reconciles and writes the status (see dataplane.agent).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from django.conf import settings

from dataplane.agent.spec import DeploymentSpec, StateDir
from workers.backends.base import Backend, BackendStatus


class LocalBackend(Backend):
    def __init__(self, root: Path | None = None):
        self.state = StateDir(root or settings.WEIR_AGENT_DIR)

    def apply(self, spec: DeploymentSpec) -> None:
        self.state.put_spec(spec)

    def status(self, deployment_id: str) -> BackendStatus | None:
        data = self.state.read_status(deployment_id)
        if data is None:
            return None
        return BackendStatus(
            revision=data["revision"],
            desired=data["desired"],
            ready=data["ready"],
            replicas=data["replicas"],
            failure=data["failure"],
        )

    def delete(self, deployment_id: str) -> None:
        self.state.remove_spec(deployment_id)

    def gone(self, deployment_id: str) -> bool:
        return not (
            self.state.desired(deployment_id).exists() or self.state.status(deployment_id).exists()
        )

    def logs(self, deployment_id: str, tail: int | None) -> str:
        directory = self.state.logs(deployment_id)
        status = self.state.read_status(deployment_id) or {}
        current = {r["name"] for r in status.get("replicas", [])}
        failed = (status.get("failure") or {}).get("replica")
        names = sorted(current | ({failed} if failed else set())) or sorted(
            p.stem for p in directory.glob("*.log")
        )
        parts = []
        for name in names:
            path = directory / f"{name}.log"
            if not path.exists():
                continue
            with path.open(errors="replace") as fh:
                lines = deque(fh, maxlen=tail) if tail is not None else fh.readlines()
            parts.append(f"--- replica {name} ---\n" + "".join(lines))
        return "".join(parts)
