"""Deployment logs: one file per deployment and container (StorageInitializer holds the
provisioning steps; InferenceServer holds replica output)."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from django.conf import settings
from django.utils import timezone


def log_path(deployment_id, container_type: str) -> Path:
    return (
        Path(settings.WEIR_LOG_DIR) / "deployments" / str(deployment_id) / f"{container_type}.log"
    )


def append(deployment_id, container_type: str, line: str) -> None:
    path = log_path(deployment_id, container_type)
    path.parent.mkdir(parents=True, exist_ok=True)
    stamp = timezone.now().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with path.open("a") as fh:
        fh.write(f"{stamp} {line.rstrip()}\n")


def tail(deployment_id, container_type: str, lines: int | None) -> str:
    path = log_path(deployment_id, container_type)
    if not path.exists():
        return ""
    with path.open(errors="replace") as fh:
        if lines is None:
            return fh.read()
        return "".join(deque(fh, maxlen=lines))
