"""Desired state and reported status, as the files the agent and the worker share."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Probe:
    path: str = "/"
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 2.0
    success_threshold: int = 1
    failure_threshold: int = 30


@dataclass
class DeploymentSpec:
    id: str
    revision: str  # replicas of another revision are replaced (rolling)
    replicas: int
    command: list[str]  # "{socket}" is replaced by the replica's Unix socket path
    cwd: str
    env: dict[str, str] = field(default_factory=dict)
    # Changes with every operation: replicas that failed under another one are retried.
    generation: str = ""
    liveness: Probe = field(default_factory=Probe)
    readiness: Probe = field(default_factory=Probe)
    memory_limit_bytes: int | None = None
    # Whole CPUs the replica may run on (its affinity is narrowed to that many cores).
    cpu_limit: int | None = None
    # The deployment's requestTimeout (seconds): a replica being stopped gets at least this
    # long between SIGTERM and SIGKILL, so a request it took just before can finish.
    request_timeout: float = 0.0

    @classmethod
    def from_dict(cls, data: dict) -> DeploymentSpec:
        data = dict(data)
        data["liveness"] = Probe(**data.get("liveness", {}))
        data["readiness"] = Probe(**data.get("readiness", {}))
        return cls(**data)


def write_json(path: Path, data: dict) -> None:
    """Atomically: a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class StateDir:
    """The directory the agent and the local backend share."""

    def __init__(self, root: Path | str):
        self.root = Path(root)

    def desired(self, deployment_id: str) -> Path:
        return self.root / "desired" / f"{deployment_id}.json"

    def status(self, deployment_id: str) -> Path:
        return self.root / "status" / f"{deployment_id}.json"

    def logs(self, deployment_id: str) -> Path:
        return self.root / "logs" / deployment_id

    @property
    def sockets(self) -> Path:
        """Where replicas listen (mode 0700: only Weir's user may connect)."""
        return self.root / "sockets"

    @property
    def processes(self) -> Path:
        """One record per running replica process, for the next agent to sweep."""
        return self.root / "processes"

    def put_spec(self, spec: DeploymentSpec) -> None:
        write_json(self.desired(spec.id), asdict(spec))

    def read_spec(self, deployment_id: str) -> DeploymentSpec | None:
        data = read_json(self.desired(deployment_id))
        return DeploymentSpec.from_dict(data) if data else None

    def remove_spec(self, deployment_id: str) -> None:
        self.desired(deployment_id).unlink(missing_ok=True)

    def specs_version(self) -> int:
        """Changes whenever a spec is written or removed (the directory's mtime: specs are
        replaced by rename), so the agent can look for changes far more often than it
        reads them."""
        try:
            return (self.root / "desired").stat().st_mtime_ns
        except OSError:
            return 0

    def specs(self) -> dict[str, DeploymentSpec]:
        found = {}
        for path in sorted((self.root / "desired").glob("*.json")):
            data = read_json(path)
            if data:
                found[path.stem] = DeploymentSpec.from_dict(data)
        return found

    def read_status(self, deployment_id: str) -> dict | None:
        return read_json(self.status(deployment_id))
