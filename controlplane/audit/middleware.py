"""AuditMiddleware: every write to an ARM path (and to SDK v1's and batch scoring's) is
recorded, whichever view answers it and however it ends.

Before the view runs, the resource's GET answers with the caller's own credentials (the same
view, serializer and authorization a client's GET would meet); after it, once more; the record
holds the difference of the two (changes.py). A request that fails is recorded with its
outcome and no changes. Nothing the caller sends turns recording off.
"""

from __future__ import annotations

import json
import logging

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest
from django.urls import Resolver404, resolve

from controlplane.audit import actions, changes, records

log = logging.getLogger("weir.audit")

# Headers the GETs leave out: preconditions and the body belong to the write.
# An action's body larger than this is not kept in its record.
MAX_PARAMETERS = 4096
WRITE_ONLY_META = {"CONTENT_LENGTH", "CONTENT_TYPE", "HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH"}


class RequestAudit:
    """What is known of an audited request while it runs; the access app's signals sent during
    it (a role assignment made by an ARM PUT) add their events here, so each is recorded once,
    with the request's outcome."""

    def __init__(self, target: actions.Target):
        self.target = target
        self.events: list[dict] = []
        self.parameters: dict | None = None


class AuditMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        target = actions.target(request.method, request.path_info)
        if target is None:
            return self.get_response(request)
        audit = request.audit = RequestAudit(target)
        if target.action.endswith("/action"):
            audit.parameters = parameters(request)
        before = read(request, target.read_path)
        response = self.get_response(request)
        try:
            record(request, response, audit, before)
        except Exception:
            # The response stands whatever happens here (records.py says why); the failure is
            # logged with the request id, never with the request's content.
            log.exception("audit of request %s failed", getattr(request, "request_id", ""))
        return response


def parameters(request) -> dict | None:
    """An action's JSON body (``{"keyType": "Primary"}``), redacted: what it was asked to do.
    Read before the view, which then parses the same bytes."""
    if not request.content_type.startswith("application/json"):
        return None
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, SuspiciousOperation):
        return None  # too large or not JSON: the view answers that
    if not isinstance(body, dict) or len(request.body) > MAX_PARAMETERS:
        return None
    return changes.redact(body)


def read(request, path: str | None) -> dict | None:
    """The JSON the resource's GET answers the caller with, or None (no such resource, or a
    GET the caller may not make)."""
    if path is None:
        return None
    try:
        match = resolve(path)
    except Resolver404:
        return None
    get = HttpRequest()
    get.method = "GET"
    get.path = get.path_info = path
    get.META = {k: v for k, v in request.META.items() if k not in WRITE_ONLY_META}
    get.META.update(REQUEST_METHOD="GET", PATH_INFO=path)
    get.META.pop("wsgi.input", None)
    get.GET = request.GET.copy()
    get.COOKIES = request.COOKIES
    # A session's user (the portal's pages), as SessionMiddleware and AuthenticationMiddleware
    # left them on the request; the GET does not pass through middleware again.
    for attribute in ("session", "user"):
        if hasattr(request, attribute):
            setattr(get, attribute, getattr(request, attribute))
    get.request_id = getattr(request, "request_id", "")
    try:
        response = match.func(get, *match.args, **match.kwargs)
        if hasattr(response, "render"):
            response.render()
    except Exception:
        log.exception("audit could not read %s", path)
        return None
    return body_of(response) if response.status_code == 200 else None


def body_of(response) -> dict | None:
    if getattr(response, "streaming", False):
        return None
    if not response.get("Content-Type", "").startswith("application/json"):
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def record(request, response, audit: RequestAudit, before: dict | None) -> None:
    target = audit.target
    status = response.status_code
    outcome = records.outcome_of(status, response)
    fields = {
        **records.request_fields(request),
        **records.principal_fields(getattr(request, "user", None)),
        "action": target.action,
        "resource_id": target.resource_id,
        "status_code": status,
        "outcome": outcome,
    }
    details = {"parameters": audit.parameters} if audit.parameters else {}
    diff = {}
    if outcome == records.Outcome.FAILED:
        error = (body_of(response) or {}).get("error")
        if isinstance(error, dict):
            # The code and the field it names; the message may quote what was sent.
            details["error"] = {"code": error.get("code"), "target": error.get("target")}
    elif target.read_path is not None:
        diff = changes.diff(before, read(request, target.read_path))
    else:
        created = body_of(response)
        created_id = (created or {}).get("id")
        if isinstance(created_id, str) and created_id.lower().startswith(
            target.resource_id.lower() + "/"
        ):
            fields["resource_id"] = created_id
        diff = changes.diff(None, created)
    events = []
    for event in audit.events:
        if event["action"].lower() == target.action.lower():
            # The signal names the very thing this request did: one record, the signal's
            # account of it (resource id, changes, details) in it.
            fields["resource_id"] = event.get("resource_id") or fields["resource_id"]
            diff = event.get("changes") or diff
            details.update(event.get("details") or {})
        else:
            events.append(event)
    records.write(**fields, changes=diff, details=details)
    for event in events:
        records.write(**{**fields, "changes": {}, "details": {}, **event})
