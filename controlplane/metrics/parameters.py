"""The query parameters of Azure Monitor's metrics API, read and checked: a 400 naming the
parameter for anything that is not right."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.utils.dateparse import parse_datetime

from controlplane.arm.errors import bad_request
from controlplane.core.durations import parse_seconds
from controlplane.metrics.definitions import (
    AGGREGATIONS,
    DEPLOYMENT,
    METRICS,
    STATUS_CODE_CLASS,
    Metric,
)

# The time grains offered (Azure's for these metrics); FULL: one point for the timespan.
INTERVALS = {
    "PT1M": timedelta(minutes=1),
    "PT5M": timedelta(minutes=5),
    "PT15M": timedelta(minutes=15),
    "PT30M": timedelta(minutes=30),
    "PT1H": timedelta(hours=1),
    "PT6H": timedelta(hours=6),
    "PT12H": timedelta(hours=12),
    "P1D": timedelta(days=1),
}
FULL = "FULL"
MAX_SPAN = timedelta(days=30)
DEFAULT_SPAN = timedelta(hours=1)
DIMENSIONS = {d.lower(): d for d in (DEPLOYMENT, STATUS_CODE_CLASS)}
_TERM = re.compile(r"^\(?\s*([A-Za-z]+)\s+eq\s+'([^']*)'\s*\)?$", re.IGNORECASE)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_OR = re.compile(r"\s+or\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Query:
    metrics: list[Metric]
    start: datetime
    end: datetime
    interval: str
    step: timedelta
    aggregations: list[str] | None  # None: each metric's primary
    # Dimension -> the values asked for (None: '*', every value), each one a time series.
    filters: dict[str, set[str] | None]


def read(params, now: datetime) -> Query:
    start, end = timespan(params.get("timespan"), now)
    interval = (params.get("interval") or "PT1M").upper()
    if interval == FULL:
        step = end - start
    elif interval in INTERVALS:
        step = INTERVALS[interval]
    else:
        raise bad_request(
            f"'interval' is one of {', '.join([*INTERVALS, FULL])}; '{interval}' is not.",
            "interval",
        )
    return Query(
        metrics=metric_names(params.get("metricnames")),
        start=start,
        end=end,
        interval=interval,
        step=step,
        aggregations=aggregations(params.get("aggregation")),
        filters=filters(params.get("$filter")),
    )


def metric_names(raw: str | None) -> list[Metric]:
    if not raw:
        return list(METRICS.values())
    return [METRICS[name] for name in _names(raw, METRICS, "metricnames", "Metric")]


def aggregations(raw: str | None) -> list[str] | None:
    return _names(raw, AGGREGATIONS, "aggregation", "Aggregation") if raw else None


def _names(raw: str, known, parameter: str, what: str) -> list[str]:
    """The comma-separated names of ``raw``, as ``known`` spells them (any case), once each."""
    by_lower = {name.lower(): name for name in known}
    chosen = []
    for name in raw.split(","):
        spelled = by_lower.get(name.strip().lower())
        if spelled is None:
            raise bad_request(
                f"{what} '{name.strip()}' is not one of {', '.join(known)}.", parameter
            )
        if spelled not in chosen:
            chosen.append(spelled)
    return chosen


def timespan(raw: str | None, now: datetime) -> tuple[datetime, datetime]:
    """``start/end``, ``start/duration`` or a duration ending now (default: the last
    hour); the start is taken back to its minute."""
    if not raw:
        start, end = now - DEFAULT_SPAN, now
    else:
        parts = raw.split("/")
        if len(parts) == 1:
            end = now
            start = end - _duration(parts[0])
        elif len(parts) == 2:
            start = _datetime(parts[0])
            end = start + _duration(parts[1]) if parts[1].upper().startswith("P") else None
            end = end or _datetime(parts[1])
        else:
            raise _bad_timespan(raw)
    start = start.replace(second=0, microsecond=0)
    if end <= start:
        raise bad_request("The timespan's end must be after its start.", "timespan")
    if end - start > MAX_SPAN:
        raise bad_request(f"The timespan is longer than {MAX_SPAN.days} days.", "timespan")
    return start, end


def _bad_timespan(raw: str):
    return bad_request(
        f"'timespan' is start/end in ISO 8601 (2026-12-01T10:00:00Z/2026-12-01T11:00:00Z), "
        f"start/duration or a duration; '{raw}' is not.",
        "timespan",
    )


def _datetime(raw: str) -> datetime:
    try:
        parsed = parse_datetime(raw.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise _bad_timespan(raw)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _duration(raw: str) -> timedelta:
    try:
        seconds = parse_seconds(raw.strip().upper())
    except ValueError:
        raise _bad_timespan(raw) from None
    if seconds > MAX_SPAN.total_seconds() + 1:
        raise bad_request(f"The timespan is longer than {MAX_SPAN.days} days.", "timespan")
    return timedelta(seconds=seconds)


def filters(raw: str | None) -> dict[str, set[str] | None]:
    """``dimension eq 'value'`` terms, joined by ``or`` within a dimension and ``and``
    between them; the value ``*`` asks for every value."""
    chosen: dict[str, set[str] | None] = {}
    if not raw or not raw.strip():
        return chosen
    for clause in _AND.split(raw.strip()):
        dimension = None
        values: set[str] | None = set()
        for term in _OR.split(clause.strip()):
            match = _TERM.match(term.strip())
            if match is None:
                raise bad_request(
                    f"'$filter' is terms like deployment eq 'blue' joined by 'and' and 'or'; "
                    f"'{term.strip()}' is not one.",
                    "$filter",
                )
            name = DIMENSIONS.get(match.group(1).lower())
            if name is None:
                raise bad_request(
                    f"Dimension '{match.group(1)}' does not exist; the dimensions are "
                    f"{', '.join(DIMENSIONS.values())}.",
                    "$filter",
                )
            if dimension not in (None, name):
                raise bad_request("'or' joins terms of one dimension only.", "$filter")
            dimension = name
            if match.group(2) == "*":
                values = None
            elif values is not None:
                values.add(match.group(2))
        chosen[dimension] = values
    classes = chosen.get(STATUS_CODE_CLASS)
    if classes and not classes <= {"2xx", "3xx", "4xx", "5xx"}:
        raise bad_request("statusCodeClass is one of 2xx, 3xx, 4xx, 5xx.", "$filter")
    return chosen
