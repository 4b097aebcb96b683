"""Server secrets read from the environment, or made once and kept in the data directory."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def server_secret(env_name: str, data_dir: Path, filename: str, factory) -> str:
    """Return a secret from `env_name`, `{env_name}_FILE`, or a file made on first use.

    The file is created with mode 0600 so a fresh single-machine install works without
    configuration, while operators can still inject secrets from their own store.
    """
    if value := os.environ.get(env_name):
        return value
    if path := os.environ.get(f"{env_name}_FILE"):
        return Path(path).read_text().strip()
    path = data_dir / filename
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(factory())
    return path.read_text().strip()


def optional_secret(env_name: str) -> str:
    """A secret the operator may give (from `env_name` or the file `{env_name}_FILE` names),
    or "" when they give none; never made up."""
    if value := os.environ.get(env_name):
        return value
    if path := os.environ.get(f"{env_name}_FILE"):
        return Path(path).read_text().strip()
    return ""


def random_token() -> str:
    return secrets.token_urlsafe(48)
