"""The backend interface: where a deployment's replicas run.

Every backend takes the same calls, so the tasks never ask which one they hold:
``prepare`` builds what the replicas need and returns a plan, ``apply`` hands the plan over,
``scale`` changes only the replica count, ``status`` reports what runs (revision, ready
replicas and their addresses), ``logs`` reads the replicas' output and ``delete`` stops
them and frees what ``apply`` made.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

Say = Callable[[str], None]


class Plan(Protocol):
    """What ``prepare`` returns and ``apply`` takes; each backend has its own shape."""

    revision: str
    replicas: int


@dataclass
class BackendStatus:
    revision: str | None
    desired: int
    ready: int
    replicas: list[dict] = field(default_factory=list)
    # Set when the current revision cannot start: {"message", "logTail"}.
    failure: dict | None = None

    def rolled_out(self, revision: str, count: int) -> bool:
        """``count`` replicas of ``revision`` are ready and no other revision is left.
        Replicas reported ``stopping`` count as gone: they are draining, and the route
        published once the rollout is done is what stops requests reaching them before
        they are signalled."""
        serving = [r for r in self.replicas if r["state"] != "stopping"]
        return (
            self.revision == revision
            and self.ready >= count
            and all(r["revision"] == revision for r in serving)
            and len(serving) == count
        )

    def ready_addresses(self) -> list[str]:
        """Where the router may send requests: ready replicas of the current revision."""
        return [
            r["address"]
            for r in self.replicas
            if r["state"] == "ready" and r["revision"] == self.revision and r.get("address")
        ]

    def serving_addresses(self) -> list[str]:
        """Every ready replica, whatever its revision: while a rollout runs, the replicas
        that may take requests."""
        return [r["address"] for r in self.replicas if r["state"] == "ready" and r.get("address")]


class Backend(ABC):
    # Said when the backend never takes up a revision: where to look.
    unavailable_hint = "is the backend running?"
    # How often a worker waiting on a rollout reads ``status`` (a replica serves once a
    # read has seen it ready: a scale from zero waits on this).
    status_poll = 0.25

    @abstractmethod
    def prepare(self, deployment, assets, say: Say) -> Plan:
        """Build or reuse what the replicas run (environment, image, files) and return the
        plan for ``apply``. Idempotent: a re-run finds its work done."""

    @abstractmethod
    def apply(self, plan: Plan) -> None:
        """Make the deployment's replicas match ``plan`` (idempotent)."""

    @abstractmethod
    def scale(self, deployment_id: str, replicas: int) -> str | None:
        """Run ``replicas`` replicas of what runs now, rebuilding nothing. Returns the
        revision they run, or None when nothing was ever applied (then apply a plan)."""

    @abstractmethod
    def status(self, deployment_id: str) -> BackendStatus | None:
        """What runs now, or None when nothing is known of the deployment."""

    @abstractmethod
    def logs(self, deployment_id: str, tail: int | None) -> str:
        """The replicas' output (InferenceServer logs), the last ``tail`` lines of each."""

    @abstractmethod
    def delete(self, deployment_id: str) -> None:
        """Stop every replica of the deployment and free what apply made; returns once they
        are gone (idempotent)."""

    def rolled_out(self, deployment_id: str, revision: str) -> None:  # noqa: B027
        """Called once ``revision`` serves alone: drop what older revisions left behind."""
