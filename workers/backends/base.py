"""The backend interface: apply a deployment's replica plan, report, delete, read logs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from dataplane.agent.spec import DeploymentSpec


@dataclass
class BackendStatus:
    revision: str | None
    desired: int
    ready: int
    replicas: list[dict] = field(default_factory=list)
    # Set when the current revision cannot start: {"message", "logTail"}.
    failure: dict | None = None

    def rolled_out(self, revision: str, count: int) -> bool:
        """``count`` replicas of ``revision`` are ready and no other revision is left."""
        return (
            self.revision == revision
            and self.ready >= count
            and all(r["revision"] == revision for r in self.replicas)
            and len(self.replicas) == count
        )


class Backend(ABC):
    @abstractmethod
    def apply(self, spec: DeploymentSpec) -> None:
        """Make the deployment's replicas match ``spec`` (idempotent)."""

    @abstractmethod
    def status(self, deployment_id: str) -> BackendStatus | None:
        """What runs now, or None when nothing is known of the deployment."""

    @abstractmethod
    def delete(self, deployment_id: str) -> None:
        """Stop every replica of the deployment (idempotent)."""

    @abstractmethod
    def gone(self, deployment_id: str) -> bool:
        """Whether every replica of a deleted deployment has stopped."""

    @abstractmethod
    def logs(self, deployment_id: str, tail: int | None) -> str:
        """The replicas' output (InferenceServer logs), the last ``tail`` lines of each."""
