"""The two ways an environment is made and filled: uv (the default) and pip.

``WEIR_ENVIRONMENT_INSTALLER`` picks one. uv makes the venv (``uv venv --seed``: with pip in
it, and setuptools below Python 3.12, as ``python -m venv`` leaves it, though in their
current releases rather than the ones bundled with the interpreter) and installs into it
from a cache of unpacked wheels by hard links, so a package already in the cache costs no
download and no copy. pip is how environments were built before: ``python -m venv`` and the
venv's own pip.

uv does not read pip's configuration, and a machine set up for a private index expects
builds to keep using it. So a uv build reads pip's settings through pip itself
(``pip config list``: the files pip reads, in pip's order, and the ``PIP_*`` variables,
which parsing the files here would have to copy, and follow from one pip release to the
next) and passes the ones with a uv equivalent on (``uv_options``).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings

from workers.errors import PermanentError, last_error

# pip applies its "global" section, then the command's own ("install"), then PIP_* variables
# (":env:"); a later one wins.
PIP_SECTIONS = ("global", "install", ":env:")
PIP_TRUE = ("y", "yes", "t", "true", "on", "1")
# Settings of pip itself, with nothing to carry over to a build with uv.
PIP_ONLY = frozenset(
    {
        "cache-dir",
        "config-file",
        "disable-pip-version-check",
        "log",
        "no-cache-dir",
        "no-color",
        "no-input",
        "no-warn-script-location",
        "progress-bar",
        "quiet",
        "require-virtualenv",
        "root-user-action",
        "verbose",
    }
)
# pip settings and the uv option that takes each of their values ...
INDEX_FLAGS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "trusted-host": "--allow-insecure-host",
}
# ... and the environment variables uv reads them from.
ENV_NAMES = {
    "cert": ("SSL_CERT_FILE",),
    "client-cert": ("SSL_CLIENT_CERT",),
    "proxy": ("HTTPS_PROXY", "HTTP_PROXY"),
    "timeout": ("UV_HTTP_TIMEOUT",),
    "default-timeout": ("UV_HTTP_TIMEOUT",),
    "retries": ("UV_HTTP_RETRIES",),
}
PIP_MISSING = re.compile(r"No matching distribution found for (\S+)")
# uv's resolver says a requirement cannot be met because nothing provides it: no such name
# in the indexes (or find-links), or no version of it at all.
UV_MISSING = re.compile(
    r"(?:was not found in the (?:package registry|provided package locations)"
    r"|there is no version of \S+|only \S+ is available) and you require ([^,\s]+)"
)


@dataclass
class UvOptions:
    """pip's settings as uv arguments and environment variables."""

    index: list[str] = field(default_factory=list)  # for uv venv (its seed packages) too
    install: list[str] = field(default_factory=list)  # for uv pip install only
    env: dict[str, str] = field(default_factory=dict)
    carried: list[str] = field(default_factory=list)  # the pip settings these come from
    dropped: list[str] = field(default_factory=list)  # pip settings uv is not given


def read_pip_config(listing: str) -> dict[str, str]:
    """pip's effective install settings from ``pip config list`` (``section.key='value'``
    lines), a later section winning as in pip."""
    sections: dict[str, dict[str, str]] = {section: {} for section in PIP_SECTIONS}
    for line in listing.splitlines():
        key, equals, value = line.partition("=")
        section, _, name = key.partition(".")
        if not equals or section not in sections:
            continue
        try:
            sections[section][name] = str(ast.literal_eval(value))  # pip prints repr()
        except (ValueError, SyntaxError):
            continue
    effective: dict[str, str] = {}
    for section in PIP_SECTIONS:
        effective.update({name: value for name, value in sections[section].items() if value})
    return effective


def pip_config() -> dict[str, str] | None:
    """pip's install settings on this machine, read by the worker's own pip; None when that
    Python has no pip."""
    try:
        listed = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return read_pip_config(listed.stdout) if listed.returncode == 0 else None


def uv_options(config: Mapping[str, str], environ: Mapping[str, str]) -> UvOptions:
    """The uv arguments and environment that make a uv build use what pip is configured
    with (``config``, as read by ``read_pip_config``). ``environ`` is the build's
    environment, for the certificates uv finds there."""
    options = UvOptions()
    for name, value in config.items():
        if name in INDEX_FLAGS:
            for each in value.split():
                options.index += [INDEX_FLAGS[name], each]
        elif name == "no-index" and value.lower() in PIP_TRUE:
            options.index.append("--no-index")
        elif name == "constraint":
            for path in value.split():
                options.install += ["--constraint", path]
        elif name in ("only-binary", "no-binary"):
            for package in value.replace(",", " ").split():
                options.install += [f"--{name}", package]
        elif name == "pre" and value.lower() in PIP_TRUE:
            options.install += ["--prerelease", "allow"]
        elif name in ENV_NAMES:
            for variable in ENV_NAMES[name]:
                options.env[variable] = value
        elif name not in ("no-index", "pre"):
            if name not in PIP_ONLY:
                options.dropped.append(name)
            continue
        options.carried.append(name)
    if config.get("extra-index-url") or config.get("find-links"):
        # pip takes the best version any of its indexes and find-links offers; uv, unless
        # told otherwise, only looks at the first index that knows the name (a guard against
        # dependency confusion). Builds resolve as pip resolved them.
        options.index += ["--index-strategy", "unsafe-best-match"]
    if not {"SSL_CERT_FILE", "SSL_CERT_DIR"} & {*options.env, *environ}:
        # uv trusts only its own built-in roots unless told otherwise; pip trusts the
        # system's (and a TLS-inspecting proxy's CA is installed there, if anywhere).
        options.index.append("--system-certs")
    return options


class Pip:
    """``python -m venv`` and the venv's pip."""

    name = "pip"
    env = None

    def venv(self, python: str, directory: Path) -> list[str]:
        return [python, "-m", "venv", str(directory)]

    def install(self, directory: Path, requirements: list[str]) -> list[str]:
        pip = str(directory / "bin" / "pip")
        return [pip, "install", "--disable-pip-version-check", "--no-input", *requirements]

    def failure(self, output: str) -> str:
        missing = PIP_MISSING.findall(output)
        return f"no such package: {', '.join(missing)}" if missing else "pip install failed"


class Uv:
    """``uv venv`` and ``uv pip install``, with pip's settings and Weir's uv cache."""

    name = "uv"

    def __init__(self, options: UvOptions):
        self.options = options
        self.env = {**os.environ, **options.env}
        self.common = [
            "--cache-dir",
            str(settings.WEIR_UV_CACHE_DIR),
            "--link-mode",
            "hardlink",
            "--no-progress",
            *options.index,
        ]

    @staticmethod
    def binary() -> str:
        try:
            from uv import find_uv_bin

            return find_uv_bin()
        except (ImportError, FileNotFoundError):
            raise PermanentError(
                "EnvironmentBuildFailed",
                "uv is not installed for the worker (it is in requirements.txt); install it "
                "or set WEIR_ENVIRONMENT_INSTALLER=pip",
            ) from None

    def venv(self, python: str, directory: Path) -> list[str]:
        # --no-project: the worker's directory (Weir's own clone) is no project of the build.
        return [
            self.binary(),
            "venv",
            "--seed",
            "--no-project",
            "--no-python-downloads",
            "--python",
            python,
            *self.common,
            str(directory),
        ]

    def install(self, directory: Path, requirements: list[str]) -> list[str]:
        # Compiled at install time, as pip does, so a replica's first start does not pay it.
        return [
            self.binary(),
            "pip",
            "install",
            "--python",
            str(directory / "bin" / "python"),
            "--compile-bytecode",
            *self.common,
            *self.options.install,
            *requirements,
        ]

    def failure(self, output: str) -> str:
        missing = UV_MISSING.findall(output)
        if missing:
            return f"no such package: {', '.join(missing)}"
        causes = [line.split("cause:", 1)[1] for line in output.splitlines() if "cause:" in line]
        return f"uv pip install failed: {causes[0].strip() if causes else last_error(output)}"


def for_build(say: Callable[[str], None]) -> Pip | Uv:
    """The installer WEIR_ENVIRONMENT_INSTALLER names; for uv, with pip's settings."""
    if settings.WEIR_ENVIRONMENT_INSTALLER == "pip":
        return Pip()
    config = pip_config()
    if config is None:
        say("uv: no pip here to read settings from; uv's own defaults apply")
        config = {}
    options = uv_options(config, os.environ)
    if options.carried:
        say(f"uv: pip settings carried over: {', '.join(options.carried)}")
    if options.dropped:
        say(f"uv: pip settings uv is not given: {', '.join(options.dropped)}")
    return Uv(options)
