"""What a write changed: the difference of a resource's ``properties`` and ``tags`` before and
after it, secrets redacted.

A change is computed on the real values and written redacted, so a record says that a key or
a password changed without saying what it was or became.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[REDACTED]"

# Names whose values are secrets: keys (primaryKey, accountKey, keyValue, apiKey), tokens
# (accessToken, sasToken), passwords, secrets, credentials, connection strings, signatures.
# Compared lower-cased without separators, so DB_PASSWORD and client_secret count too; names
# that only mention a key's kind (keyType, authMode) are not secrets.
SECRET_NAME = re.compile(
    r"(key|keys|keyvalue|token|tokens|password|passwd|pwd|secret|secrets|credential|credentials"
    r"|connectionstring|sas|sasuri|sasurl|sig|signature)$|^(secret|password|token|sas)"
)
# A SAS (or any signed URL): the signature is the secret, the rest of the URL is not.
SIGNATURE = re.compile(r"([?&](?:sig|signature|x-amz-signature|code)=)[^&#\s]*", re.IGNORECASE)
# A JWT anywhere in a value (a bearer token pasted into an environment variable).
JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")


def is_secret_name(name: str) -> bool:
    return bool(SECRET_NAME.search(re.sub(r"[^a-z0-9]", "", name.lower())))


def redact(value: Any, name: str = "") -> Any:
    """``value`` with every secret in it replaced: values under secret names, and signatures
    and JWTs inside strings."""
    if name and is_secret_name(name) and value not in (None, "", [], {}):
        return REDACTED
    if isinstance(value, dict):
        return {key: redact(item, str(key)) for key, item in value.items()}
    if isinstance(value, list):
        return [redact(item, name) for item in value]
    if isinstance(value, str):
        return JWT.sub(REDACTED, SIGNATURE.sub(rf"\g<1>{REDACTED}", value))
    return value


def _flatten(value: Any, path: str, out: dict) -> dict:
    """Leaves of nested objects by dotted path (lists are leaves: compared whole)."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{path}.{key}", out)
    else:
        out[path] = value
    return out


def _name_at(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _redacted_at(path: str, value: Any) -> Any:
    # Any secret name along the path hides the value (properties.credentials.account.name).
    if any(is_secret_name(part) for part in path.split(".")[1:]):
        return REDACTED if value not in (None, "", [], {}) else value
    return redact(value, _name_at(path))


def diff(before: dict | None, after: dict | None) -> dict:
    """``{"properties.x": {"before": b, "after": a}, "tags.t": {...}}`` for every leaf of the
    two documents' ``properties`` and ``tags`` that differs (None for a missing side). A
    document without either (SDK v1's) is compared whole."""
    old, new = {}, {}
    for document, leaves in ((before, old), (after, new)):
        if not isinstance(document, dict):
            continue
        if "properties" in document or "tags" in document:
            parts = {part: document.get(part) for part in ("properties", "tags")}
        else:
            parts = {"body": document}
        for part, value in parts.items():
            if isinstance(value, dict):
                for key, item in value.items():
                    _flatten(item, f"{part}.{key}", leaves)
            elif value is not None:
                leaves[part] = value
    changes = {}
    for path in sorted(old.keys() | new.keys()):
        was, now = old.get(path), new.get(path)
        if was != now:
            changes[path] = {"before": _redacted_at(path, was), "after": _redacted_at(path, now)}
    return changes
