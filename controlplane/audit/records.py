"""Writing audit rows: the one place that adds to the log.

A record that cannot be written does not fail the request that made it. By the time a write's
outcome is known its change has committed (and its operation may have been handed to a
worker), so answering 500 would tell the client a change failed that happened, and its retry
would find it done; the missing row would be missing all the same. Instead the record, already
redacted, is logged whole at ERROR on ``weir.audit`` with its request id, where an operator's
log collection keeps it, and counted (``failures``) for the process's health.
"""

from __future__ import annotations

import getpass
import ipaddress
import json
import logging
import threading

from django.db import DatabaseError, transaction

from controlplane.audit.models import AuditRecord, Outcome

log = logging.getLogger("weir.audit")

_lock = threading.Lock()
failures = 0  # records this process could not write, since it started


def outcome_of(status_code: int, headers) -> str:
    """Succeeded for a 2xx that finished the change, Accepted for one that started an
    operation (202, or a PUT answering with Azure-AsyncOperation), Failed for the rest."""
    if status_code >= 400 or status_code < 200:
        return Outcome.FAILED
    if status_code == 202 or "Azure-AsyncOperation" in headers:
        return Outcome.ACCEPTED
    return Outcome.SUCCEEDED


def principal_fields(user) -> dict:
    """Who acted: a user account's name, and its principal's object id and kind."""
    if user is None or not getattr(user, "is_authenticated", False):
        return {}
    from controlplane.access.principals import principal_of

    fields = {"principal_name": user.get_username()}
    try:
        principal = principal_of(user)
    except DatabaseError:
        return fields
    return {**fields, "principal_id": principal.object_id, "principal_type": principal.kind}


def operator_fields() -> dict:
    """Someone at the server's shell (manage.py): the account the process runs as."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = ""
    return {"principal_name": name, "principal_type": "Operator"}


def request_fields(request) -> dict:
    """What a record keeps of the request that made it (an HttpRequest or DRF's Request)."""
    if request is None:
        return {}
    request = getattr(request, "_request", request)
    correlation = request.headers.get("x-ms-correlation-request-id", "")
    return {
        "request_id": getattr(request, "request_id", "") or "",
        "correlation_id": "".join(c for c in correlation if c.isalnum() or c in "-_")[:64],
        "method": request.method or "",
        "client_ip": client_ip(request),
    }


def client_ip(request) -> str | None:
    """The caller's address. Behind ``manage.py serve``, gunicorn listens on a unix socket only
    nginx can reach (no REMOTE_ADDR) and nginx sets X-Forwarded-For to its peer's address; a
    client's own X-Forwarded-For is believed nowhere else."""
    address = request.META.get("REMOTE_ADDR") or ""
    if not address:
        address = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def write(**fields) -> AuditRecord | None:
    """Add one record (see the module's docstring for when it cannot be)."""
    global failures
    fields.setdefault("resource_id", "")
    fields["resource_key"] = fields["resource_id"].lower()
    record = AuditRecord(**fields)
    try:
        # Its own savepoint: a failure here must not break a transaction the caller is in.
        with transaction.atomic():
            record.save(force_insert=True)
    except DatabaseError:
        with _lock:
            failures += 1
        log.exception("audit record not written: %s", json.dumps(fields, default=str))
        return None
    return record
