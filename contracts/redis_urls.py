"""Redis URLs with the operator's password: every process that connects to Redis (the
control plane, the workers' broker and result backend, the router's feed, load reports and
autoscaler) reads its URL through ``with_password``.

The password comes from the URL itself (``redis://:PASSWORD@host:port/db``, or
``redis://USER:PASSWORD@...`` for an ACL user), or else from ``WEIR_REDIS_PASSWORD`` (or the
file ``WEIR_REDIS_PASSWORD_FILE`` names), which is put into every Redis URL that has none.
Either way it travels in the environment, never on a command line, which ``ps`` shows to
every user of the machine.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

PASSWORD_ENV = "WEIR_REDIS_PASSWORD"
SCHEMES = ("redis", "rediss")


def configured_password(environ=None) -> str:
    """``WEIR_REDIS_PASSWORD``, else the content of ``WEIR_REDIS_PASSWORD_FILE``, else ''."""
    environ = os.environ if environ is None else environ
    if value := environ.get(PASSWORD_ENV):
        return value
    if path := environ.get(f"{PASSWORD_ENV}_FILE"):
        return Path(path).read_text().strip()
    return ""


def with_password(url: str, environ=None) -> str:
    """``url`` with the configured password, unless it is not a Redis URL or already has
    one (then it is returned as it is)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or parts.password is not None:
        return url
    password = configured_password(environ)
    if not password:
        return url
    user = parts.username or ""
    netloc = f"{user}:{quote(password, safe='')}@{parts.netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc))


def has_password(url: str) -> bool:
    return urlsplit(url).password is not None


def redacted(url: str) -> str:
    """``url`` fit for a log line: its password replaced by ``**``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:**@{parts.netloc.rpartition('@')[2]}"))
