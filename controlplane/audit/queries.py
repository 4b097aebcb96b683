"""Which records a read asks for: a scope (an ARM id and everything under it), a principal, an
action (``*`` for any characters, as role definitions match them) and a time range, given as
query parameters or as Azure's activity-log ``$filter``."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.utils.dateparse import parse_date, parse_datetime

from controlplane.arm.errors import bad_request
from controlplane.audit.models import AuditRecord, Outcome


@dataclass
class Query:
    scope: str | None = None
    principal: str | None = None
    action: str | None = None
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # inclusive
    correlation_id: str | None = None
    outcome: str | None = None

    def narrow_scope(self, scope: str, parameter: str) -> None:
        """Ask for ``scope``, which must lie within any scope already asked for."""
        if self.scope and not within(scope, self.scope):
            raise bad_request(f"'{scope}' is outside the scope '{self.scope}'.", parameter)
        self.scope = scope.rstrip("/") or "/"

    def records(self) -> QuerySet:
        rows = AuditRecord.objects.order_by("-id")
        if self.scope and self.scope != "/":
            key = self.scope.lower()
            rows = rows.filter(Q(resource_key=key) | Q(resource_key__startswith=key + "/"))
        if self.principal:
            try:
                rows = rows.filter(principal_id=uuid.UUID(self.principal))
            except ValueError:
                rows = rows.filter(principal_name__iexact=self.principal)
        if self.action:
            rows = rows.filter(action__iregex=wildcard(self.action))
        if self.since:
            rows = rows.filter(time__gte=self.since)
        if self.until:
            rows = rows.filter(time__lte=self.until)
        if self.correlation_id:
            rows = rows.filter(
                Q(correlation_id=self.correlation_id) | Q(request_id=self.correlation_id)
            )
        if self.outcome:
            rows = rows.filter(outcome__iexact=self.outcome)
        return rows


def within(scope: str, outer: str) -> bool:
    scope, outer = scope.lower().rstrip("/"), outer.lower().rstrip("/")
    return not outer or scope == outer or scope.startswith(outer + "/")


def wildcard(pattern: str) -> str:
    return "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$"


def timestamp(value: str, parameter: str) -> dt.datetime:
    """An ISO 8601 time (a date alone is its midnight; no zone is UTC)."""
    parsed = parse_datetime(value)
    if parsed is None and (day := parse_date(value)) is not None:
        parsed = dt.datetime.combine(day, dt.time())
    if parsed is None:
        raise bad_request(
            f"'{value[:40]}' is not an ISO 8601 time such as 2026-01-31T12:00:00Z.", parameter
        )
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def from_parameters(params, query: Query) -> Query:
    """The Weir route's own parameters: scope, principal, action, from, to."""
    if params.get("scope"):
        scope = params["scope"]
        if not scope.startswith("/"):
            raise bad_request("'scope' is an ARM id such as /subscriptions/{id}.", "scope")
        query.narrow_scope(scope, "scope")
    query.principal = params.get("principal") or query.principal
    query.action = params.get("action") or query.action
    if params.get("from"):
        query.since = timestamp(params["from"], "from")
    if params.get("to"):
        query.until = timestamp(params["to"], "to")
    return query


# One condition of Azure's activity-log $filter: name op 'value'.
CONDITION = re.compile(r"^\s*([A-Za-z]+)\s+(eq|ge|le|gt|lt)\s+'((?:[^']|'')*)'\s*$", re.IGNORECASE)
AND = re.compile(r"\s+and\s+", re.IGNORECASE)


def from_filter(text: str, query: Query, subscription: str | None = None) -> Query:
    """Azure's activity-log ``$filter``: conditions joined by ``and``; eventTimestamp
    ge/le/gt/lt, and eq for resourceGroupName, resourceUri (that resource and what is under
    it), resourceProvider, operationName (``*`` allowed), caller, correlationId and status."""
    if not text.strip():
        return query
    for condition in AND.split(text.strip()):
        match = CONDITION.match(condition)
        if match is None:
            raise bad_request(
                f"The filter condition '{condition[:80]}' is not of the form name op 'value'.",
                "$filter",
            )
        name, op, value = match.group(1).lower(), match.group(2).lower(), match.group(3)
        value = value.replace("''", "'")
        if name == "eventtimestamp":
            moment = timestamp(value, "$filter")
            if op in ("ge", "gt"):
                query.since = moment + dt.timedelta(microseconds=1 if op == "gt" else 0)
            elif op in ("le", "lt"):
                query.until = moment - dt.timedelta(microseconds=1 if op == "lt" else 0)
            else:
                raise bad_request("eventTimestamp is compared with ge, gt, le or lt.", "$filter")
            continue
        if op != "eq":
            raise bad_request(f"'{match.group(1)}' is compared with eq only.", "$filter")
        if name == "resourcegroupname":
            if subscription is None:
                raise bad_request("resourceGroupName filters a subscription's log.", "$filter")
            query.narrow_scope(f"/subscriptions/{subscription}/resourceGroups/{value}", "$filter")
        elif name in ("resourceuri", "resourceid"):
            query.narrow_scope(value, "$filter")
        elif name == "resourceprovider":
            query.action = f"{value}/*"
        elif name == "operationname":
            query.action = value
        elif name == "caller":
            query.principal = value
        elif name == "correlationid":
            query.correlation_id = value
        elif name == "status":
            if value.lower() not in {o.lower() for o in Outcome.values}:
                raise bad_request(f"status is one of {', '.join(Outcome.values)}.", "$filter")
            query.outcome = value
        else:
            raise bad_request(f"The filter cannot name '{match.group(1)}'.", "$filter")
    return query
