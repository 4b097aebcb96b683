"""Reading the audit log: a page of records, newest first, or every matching record as JSON
lines. Two routes over one view: Weir's own (``/providers/Weir.Audit/auditRecords``, any scope,
with query parameters) and Azure's activity log (``/subscriptions/{id}/providers/
Microsoft.Insights/eventtypes/management/values`` with ``$filter``)."""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from controlplane.access import actions as access_actions
from controlplane.arm.errors import bad_request
from controlplane.arm.pagination import DIGITS, INT32_MAX, TOP
from controlplane.arm.schema import paged
from controlplane.arm.views import ScopedView, check_api_version
from controlplane.audit import queries
from controlplane.audit.serializers import EventDataSerializer, event_data

JSON_LINES = "application/x-ndjson"
READ_ACTION = "Microsoft.Insights/eventtypes/values/read"
# Azure's clients read the activity log with api-version 2015-04-01: dated versions from 2015.
API_VERSION = re.compile(r"^20(1[5-9]|[2-9]\d)-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])(-preview)?$")

SKIP_TOKEN = OpenApiParameter(
    "$skipToken",
    {"type": "string", "pattern": "^[0-9]{1,19}$"},
    description="Where the page starts: the continuation token of the previous nextLink.",
)
FORMAT = OpenApiParameter(
    "$format",
    {"type": "string", "enum": ["json", "jsonl"]},
    description="jsonl: every matching record, one JSON object a line (as Accept: "
    "application/x-ndjson).",
)
FILTER = OpenApiParameter(
    "$filter",
    str,
    description="Azure's activity-log filter: eventTimestamp ge/le '...', and eq for "
    "resourceGroupName, resourceUri, resourceProvider, operationName, caller, correlationId, "
    "status; joined by 'and'.",
)
OWN_FILTERS = [
    OpenApiParameter("scope", str, description="An ARM id: records of it and under it."),
    OpenApiParameter("principal", str, description="A principal's name or object id."),
    OpenApiParameter("action", str, description="An operation name; * matches any characters."),
    OpenApiParameter("from", str, description="The earliest time (ISO 8601), inclusive."),
    OpenApiParameter("to", str, description="The latest time (ISO 8601), inclusive."),
]
LIST_RESPONSES = {
    (200, "application/json"): paged(EventDataSerializer),
    (200, JSON_LINES): OpenApiResponse(str, description="One EventData a line."),
}


class JsonLinesRenderer(BaseRenderer):
    """Lets a client ask for JSON lines with Accept; the view streams them itself."""

    media_type = JSON_LINES
    format = "jsonl"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return json.dumps(data).encode()


class AuditLogView(ScopedView):
    renderer_classes = [JSONRenderer, JsonLinesRenderer]

    def initial(self, request, *args, **kwargs):
        check_api_version(request, API_VERSION)
        super().initial(request, *args, **kwargs)

    def query(self) -> queries.Query:
        if not hasattr(self, "_query"):
            self._query = self.build_query()
        return self._query

    def build_query(self) -> queries.Query:
        raise NotImplementedError

    def access_request(self) -> access_actions.Request:
        """Reading records over the scope the query names (authorization checks it), so a
        reader of one workspace may read its records."""
        return access_actions.Request(READ_ACTION, self.query().scope or "/")

    def get(self, request, **kwargs):
        rows = self.query().records()
        wanted = request.query_params.get("$format", "").lower()
        if wanted not in ("", "json", "jsonl"):
            raise bad_request("'$format' is json or jsonl.", "$format")
        after = skip_token(request)
        if after is not None:
            rows = rows.filter(id__lt=after)
        if wanted == "jsonl" or (not wanted and request.accepted_renderer.format == "jsonl"):
            lines = (json.dumps(event_data(row)) + "\n" for row in rows.iterator(chunk_size=500))
            return StreamingHttpResponse(lines, content_type=JSON_LINES)
        size = top(request)
        records = list(rows[: size + 1])
        next_link = None
        if len(records) > size:
            records = records[:size]
            params = request.query_params.copy()
            params["$skipToken"] = str(records[-1].id)
            next_link = (
                request.build_absolute_uri(request.path)
                + "?"
                + urlencode(params, doseq=True, safe="$")
            )
        return Response({"value": [event_data(r) for r in records], "nextLink": next_link})


def skip_token(request) -> int | None:
    raw = request.query_params.get("$skipToken")
    if raw in (None, ""):
        return None
    if not DIGITS.fullmatch(raw) or len(raw) > 19:
        raise bad_request("'$skipToken' is the continuation token of a nextLink.", "$skipToken")
    return int(raw)


def top(request) -> int:
    raw = request.query_params.get("$top")
    limit = settings.WEIR_PAGE_SIZE * 10
    if raw in (None, ""):
        return settings.WEIR_PAGE_SIZE
    if not DIGITS.fullmatch(raw) or not 1 <= int(raw[:12]) <= INT32_MAX:
        raise bad_request(f"'$top' must be a whole number from 1 to {INT32_MAX}.", "$top")
    return min(int(raw), limit)


@extend_schema_view(
    get=extend_schema(
        operation_id="AuditRecords_List",
        parameters=[*OWN_FILTERS, FILTER, TOP, SKIP_TOKEN, FORMAT],
        responses=LIST_RESPONSES,
    )
)
class AuditRecordListView(AuditLogView):
    """The whole install's log, or a scope's (``?scope=``)."""

    def build_query(self) -> queries.Query:
        params = self.request.query_params
        query = queries.from_parameters(params, queries.Query())
        return queries.from_filter(params.get("$filter", ""), query)


@extend_schema_view(
    get=extend_schema(
        operation_id="ActivityLogs_List",
        parameters=[FILTER, TOP, SKIP_TOKEN, FORMAT],
        responses=LIST_RESPONSES,
    )
)
class ActivityLogView(AuditLogView):
    """Azure's activity log of a subscription."""

    def build_query(self) -> queries.Query:
        subscription = self.kwargs["subscriptionId"]
        query = queries.Query(scope=f"/subscriptions/{subscription}")
        return queries.from_filter(
            self.request.query_params.get("$filter", ""), query, subscription
        )
