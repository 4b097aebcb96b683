"""Where the CLI sends its calls, with which credential, and the default workspace.

Read from ``~/.weir/config`` (``WEIR_CLI_CONFIG`` to move it), an INI file written by
``weir configure`` (and by ``bin/start`` on first start), then overridden by environment
variables: WEIR_URL, WEIR_TOKEN, WEIR_CA_BUNDLE, WEIR_SUBSCRIPTION, WEIR_GROUP,
WEIR_WORKSPACE, WEIR_LOCATION."""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
# [section] key -> environment variable
SETTINGS = {
    ("server", "url"): "WEIR_URL",
    ("server", "token"): "WEIR_TOKEN",
    ("server", "ca_bundle"): "WEIR_CA_BUNDLE",
    ("defaults", "subscription"): "WEIR_SUBSCRIPTION",
    ("defaults", "group"): "WEIR_GROUP",
    ("defaults", "workspace"): "WEIR_WORKSPACE",
    ("defaults", "location"): "WEIR_LOCATION",
}
DEFAULT_NAMES = {"group", "workspace", "subscription", "location"}


def path() -> Path:
    return Path(os.environ.get("WEIR_CLI_CONFIG") or Path.home() / ".weir" / "config")


def read_file() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(path())
    for section in ("server", "defaults"):
        if not parser.has_section(section):
            parser.add_section(section)
    return parser


def write_file(parser: configparser.ConfigParser) -> Path:
    target = path()
    target.parent.mkdir(parents=True, exist_ok=True)
    # It holds an API token: readable by its owner only.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        parser.write(handle)
    return target


@dataclass
class Config:
    url: str | None
    token: str | None
    ca_bundle: str | None
    subscription: str
    group: str | None
    workspace: str | None
    location: str | None


def load() -> Config:
    parser = read_file()
    values = {}
    for (section, key), variable in SETTINGS.items():
        values[key] = os.environ.get(variable) or parser.get(section, key, fallback=None)
    values["subscription"] = values["subscription"] or DEFAULT_SUBSCRIPTION
    return Config(**values)
