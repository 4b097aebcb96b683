"""Lists as ``{"value": [...], "nextLink": ...}``, paged by ``$top``/``count`` and ``$skip``."""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter

from controlplane.arm.errors import bad_request

# The paging parameters as openapi.yaml states them: what page() accepts.
SKIP = OpenApiParameter(
    "$skip",
    {"type": "string", "pattern": "^[0-9]+$"},
    description="Where the page starts: the continuation token of the previous nextLink.",
)
TOP = OpenApiParameter("$top", {"type": "integer", "minimum": 1}, description="The page size.")
COUNT = OpenApiParameter("count", {"type": "integer", "minimum": 1}, description="The page size.")


def _int_param(request, name: str, minimum: int) -> int | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"'{name}' must be an integer.", name) from None
    if value < minimum:
        raise bad_request(f"'{name}' must be at least {minimum}.", name)
    return value


def page(request, queryset, serialize) -> dict:
    """Serialize one page of ``queryset`` (``serialize`` takes the page's rows and returns
    their JSON values); ``nextLink`` is an absolute URL to the next one.

    ``$skip`` is the continuation token (an offset); ``$top`` or ``count`` is the page size.
    """
    size = _int_param(request, "$top", 1) or _int_param(request, "count", 1)
    size = min(size or settings.WEIR_PAGE_SIZE, settings.WEIR_PAGE_SIZE * 10)
    offset = _int_param(request, "$skip", 0) or 0
    rows = list(queryset[offset : offset + size + 1])
    next_link = None
    if len(rows) > size:
        rows = rows[:size]
        params = request.query_params.copy()
        params["$skip"] = str(offset + size)
        next_link = (
            request.build_absolute_uri(request.path) + "?" + urlencode(params, doseq=True, safe="$")
        )
    return {"value": serialize(rows), "nextLink": next_link}
