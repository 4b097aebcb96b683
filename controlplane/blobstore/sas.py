"""Shared access signatures that Weir signs, with Azure's query parameter names.

A SAS grants permissions (``sp``: r read, a add, c create, w write, d delete, l list) on one
scope (``sr``: c container, d directory, b blob) until an expiry (``se``). The signature
(``sig``) is an HMAC-SHA256, keyed by the account key, over the fields and the scope, so
changing any of them voids it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

SAS_VERSION = "2021-08-06"
PERMISSION_ORDER = "racwdl"


class SasError(Exception):
    """The request's SAS does not authorize it (the message is for logs, not the client)."""


@dataclass(frozen=True)
class Grant:
    account: str
    container: str
    resource: str  # "c", "d" or "b"
    path: str  # "" for a container; the directory or blob path otherwise
    permissions: str
    expiry: datetime
    start: datetime | None = None

    def covers(self, container: str, target: str | None) -> bool:
        """Whether the scope includes ``target``: a blob, or the prefix a listing asks for
        (None for the whole container)."""
        if container != self.container:
            return False
        if self.resource == "c":
            return True
        if target is None:
            return False
        if self.resource == "b":
            return target == self.path
        return (target + "/").startswith(self.path + "/")

    def visible(self, blobs):
        """Narrow a queryset of the container's blobs to those in the scope. A listing's
        prefix is a string, not a path: a directory SAS for ``a/b`` that covers the prefix
        ``a/b`` must still not list ``a/b-sibling/...``."""
        if self.resource == "d":
            return blobs.filter(name__startswith=self.path + "/")
        if self.resource == "b":
            return blobs.filter(name=self.path)
        return blobs


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _string_to_sign(fields: dict, grant: Grant) -> str:
    resource = f"/blob/{grant.account}/{grant.container}"
    if grant.path:
        resource += f"/{grant.path}"
    return "\n".join(
        [
            fields["sp"],
            fields.get("st", ""),
            fields["se"],
            resource,
            fields["sv"],
            fields["sr"],
            fields.get("spr", ""),
        ]
    )


def _sign(key: str, text: str) -> str:
    digest = hmac.new(key.encode(), text.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def issue(key: str, grant: Grant) -> str:
    """The SAS query string (without ``?``) for ``grant``."""
    permissions = "".join(p for p in PERMISSION_ORDER if p in grant.permissions)
    fields = {"sv": SAS_VERSION, "sr": grant.resource, "sp": permissions}
    if grant.start:
        fields["st"] = _format_time(grant.start)
    fields["se"] = _format_time(grant.expiry)
    fields["spr"] = "https"
    if grant.resource == "d":
        fields["sdd"] = str(len(grant.path.strip("/").split("/")))
    signed = Grant(**{**grant.__dict__, "permissions": permissions})
    fields["sig"] = _sign(key, _string_to_sign(fields, signed))
    return urlencode(fields)


def grant_for(
    account: str, container: str, path: str, permissions: str, lifetime: timedelta, resource: str
) -> Grant:
    now = datetime.now(UTC)
    return Grant(
        account=account,
        container=container,
        resource=resource,
        path=path.strip("/"),
        permissions=permissions,
        start=now - timedelta(minutes=5),
        expiry=now + lifetime,
    )


def verify(key: str, query, account: str, container: str, target: str | None, needed: str) -> Grant:
    """Check the SAS in ``query`` authorizes ``needed`` on ``target`` in the container: a
    blob name, a listing prefix, or None for the container itself."""
    try:
        fields = {name: query[name] for name in ("sv", "sr", "sp", "se", "sig")}
    except KeyError as exc:
        raise SasError(f"missing {exc.args[0]}") from None
    for optional in ("st", "spr"):
        if optional in query:
            fields[optional] = query[optional]
    resource = fields["sr"]
    if resource not in ("c", "d", "b"):
        raise SasError("unknown signed resource")
    # The scope is part of what was signed: recompute it from the request and the SAS.
    if resource == "c":
        path = ""
    elif resource == "b":
        path = target or ""
    else:
        try:
            depth = int(query.get("sdd", ""))
        except ValueError:
            raise SasError("bad sdd") from None
        path = "/".join((target or "").split("/")[:depth]) if depth > 0 else ""
    try:
        expiry = _parse_time(fields["se"])
        start = _parse_time(fields["st"]) if fields.get("st") else None
    except ValueError:
        raise SasError("bad time") from None
    grant = Grant(account, container, resource, path, fields["sp"], expiry, start)
    expected = _sign(key, _string_to_sign(fields, grant))
    if not hmac.compare_digest(expected, fields["sig"]):
        raise SasError("signature mismatch")
    now = datetime.now(UTC)
    if now >= expiry or (start and now < start):
        raise SasError("outside the validity window")
    if not grant.covers(container, target):
        raise SasError("outside the signed scope")
    if any(p not in grant.permissions for p in needed):
        raise SasError(f"permission {needed} not granted")
    return grant
