"""Lists as ``{"value": [...], "nextLink": ...}``, paged by ``$top``/``count`` and ``$skip``."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter

from controlplane.arm.errors import bad_request

# $top and count are int32 in Azure's swagger. $skip is the continuation token: Weir writes an
# offset there in each nextLink, and Postgres takes offsets up to a bigint.
INT32_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1
DIGITS = re.compile(r"[0-9]+")

# The paging parameters as openapi.yaml states them: what page() accepts.
SKIP = OpenApiParameter(
    "$skip",
    {"type": "string", "pattern": "^[0-9]{1,19}$"},
    description="Where the page starts: the continuation token of the previous nextLink.",
)
PAGE_SIZE = {"type": "integer", "minimum": 1, "maximum": INT32_MAX}
TOP = OpenApiParameter("$top", PAGE_SIZE, description="The page size.")
COUNT = OpenApiParameter("count", PAGE_SIZE, description="The page size.")


def _int_param(request, name: str, minimum: int, maximum: int, meaning: str) -> int | None:
    """The whole number in query parameter ``name`` (ASCII digits only: no sign, space or
    underscore, which int() would take), or None when it is absent or empty."""
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    value = int(raw) if DIGITS.fullmatch(raw) and len(raw) <= 19 else None
    if value is None or not minimum <= value <= maximum:
        raise bad_request(f"'{name}' must be {meaning}, not '{raw[:40]}'.", name)
    return value


def page(request, queryset, serialize) -> dict:
    """Serialize one page of ``queryset`` (``serialize`` takes the page's rows and returns
    their JSON values); ``nextLink`` is an absolute URL to the next one.

    ``$skip`` (or ``$skipToken``, its name in other ARM lists) is the continuation token (an
    offset); ``$top`` or ``count`` is the page size.
    """
    count = f"a whole number from 1 to {INT32_MAX}"
    size = _int_param(request, "$top", 1, INT32_MAX, count)
    size = size or _int_param(request, "count", 1, INT32_MAX, count)
    size = min(size or settings.WEIR_PAGE_SIZE, settings.WEIR_PAGE_SIZE * 10)
    token = "a continuation token from a nextLink (a whole number of rows to skip)"
    offset = _int_param(request, "$skip", 0, BIGINT_MAX, token)
    if offset is None:
        offset = _int_param(request, "$skipToken", 0, BIGINT_MAX, token) or 0
    rows = list(queryset[offset : offset + size + 1])
    next_link = None
    if len(rows) > size:
        rows = rows[:size]
        params = request.query_params.copy()
        params["$skip"] = str(offset + size)
        params.pop("$skipToken", None)
        next_link = (
            request.build_absolute_uri(request.path) + "?" + urlencode(params, doseq=True, safe="$")
        )
    return {"value": serialize(rows), "nextLink": next_link}
