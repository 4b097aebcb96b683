"""The nginx configuration ``manage.py serve`` puts in front of gunicorn (nginx.conf beside
this file), with the answers nginx gives itself: ARM's JSON error body on the API, Azure
Storage's XML error body on the blob store, so a client reads a refusal from nginx as it
reads one from Weir."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from controlplane.arm.errors import content_too_large, error_body
from controlplane.blobstore.views import API_VERSION as BLOB_API_VERSION
from controlplane.blobstore.views import error_xml

TEMPLATE = Path(__file__).with_name("nginx.conf")
# Seconds a client has to send a whole request header, however it trickles.
HEADER_TIMEOUT = 10
# A request line or one header line fits in one buffer; all header lines in HEADER_BUFFERS.
HEADER_BUFFER = 16 * 1024
HEADER_BUFFERS = 4
LONG_REQUEST_LINE = f"The request line is longer than {HEADER_BUFFER} bytes."
LARGE_HEADERS = (
    f"A header line is longer than {HEADER_BUFFER} bytes, or the headers are larger than "
    f"{HEADER_BUFFERS * HEADER_BUFFER} bytes."
)
PLAIN_HTTP = "This port speaks HTTPS; the request came as plain HTTP."


@dataclass(frozen=True)
class Refusal:
    """An answer nginx gives without asking gunicorn. ``status`` is nginx's name for the
    case (494 and 497 are its own names for particular 400s); ``answer`` the status sent."""

    status: int
    code: str
    message: str
    answer: int | None = None


def api_refusals(max_body: int, read_timeout: int) -> list[Refusal]:
    return [
        Refusal(400, "BadRequest", "The request is not valid HTTP/1.1."),
        Refusal(404, "NotFound", "The requested path was not found."),
        Refusal(413, *content_too_large(max_body)),
        Refusal(414, "RequestUriTooLong", LONG_REQUEST_LINE),
        Refusal(494, "RequestHeaderTooLarge", LARGE_HEADERS, answer=400),
        Refusal(497, "HttpsRequired", PLAIN_HTTP, answer=400),
        Refusal(500, "InternalServerError", "The server hit an unexpected error."),
        Refusal(502, "BadGateway", "The API server is not answering; retry later."),
        Refusal(504, "GatewayTimeout", f"No answer within {read_timeout} seconds."),
    ]


def blob_refusals(max_body: int, read_timeout: int) -> list[Refusal]:
    # Azure Storage's own error codes where it has one for the case.
    return [
        Refusal(400, "InvalidInput", "The request is not valid HTTP/1.1."),
        Refusal(404, "ResourceNotFound", "The specified resource does not exist."),
        Refusal(413, "RequestBodyTooLarge", f"The content is larger than {max_body} bytes."),
        Refusal(414, "InvalidUri", LONG_REQUEST_LINE),
        Refusal(494, "InvalidHeaderValue", LARGE_HEADERS, answer=400),
        Refusal(497, "AccountRequiresHttps", PLAIN_HTTP, answer=400),
        Refusal(500, "InternalError", "The server encountered an internal error."),
        Refusal(502, "InternalError", "The blob server is not answering; retry later."),
        Refusal(504, "OperationTimedOut", f"No answer within {read_timeout} seconds."),
    ]


def error_pages(refusals: list[Refusal], *, blob: bool) -> str:
    """``error_page`` directives and the internal locations that answer them."""
    blocks = []
    for refusal in refusals:
        uri = f"/.weir/error/{refusal.status}"
        if blob:
            content_type = "application/xml"
            body = error_xml(refusal.code, refusal.message)
            headers = [
                f"add_header x-ms-error-code {refusal.code} always;",
                f"add_header x-ms-version {BLOB_API_VERSION} always;",
            ]
        else:
            content_type = "application/json"
            body = json.dumps(error_body(refusal.code, refusal.message))
            headers = []
        lines = [
            f"error_page {refusal.status} {uri};",
            f"location = {uri} {{",
            "    internal;",
            f"    default_type {content_type};",
            *(f"    {header}" for header in headers),
            f"    return {refusal.answer or refusal.status} {_quoted(body)};",
            "}",
        ]
        blocks.append("\n".join(f"        {line}" for line in lines))
    return "\n".join(blocks)


def _quoted(text: str) -> str:
    # nginx expands $name inside strings, and has no escape for it.
    if "$" in text:
        raise ValueError(f"an nginx string cannot hold a literal $: {text!r}")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass(frozen=True)
class Site:
    """One server as ``manage.py serve`` runs it."""

    server: str  # "api" or "blob", for the comment at the top
    listen: str  # address:port clients connect to
    socket: Path  # gunicorn's unix socket
    state: Path  # nginx's pid file and spooled bodies
    certificate: Path
    key: Path
    max_body: int  # bytes in one request body
    upstream_timeout: int  # gunicorn's --timeout: a worker silent this long is replaced
    blob: bool
    user: str | None  # nginx's workers run as this user (set only when started as root)


def render(site: Site) -> str:
    # nginx waits a little longer than gunicorn, which answers for a worker it replaced.
    read_timeout = site.upstream_timeout + 5
    refusals = (blob_refusals if site.blob else api_refusals)(site.max_body, read_timeout)
    values = {
        "server": site.server,
        "listen": site.listen,
        "socket": str(site.socket),
        "state": str(site.state),
        "certificate": str(site.certificate),
        "key": str(site.key),
        "max_body": str(site.max_body),
        "read_timeout": str(read_timeout),
        "header_timeout": str(HEADER_TIMEOUT),
        "header_buffer": str(HEADER_BUFFER),
        "header_buffers": str(HEADER_BUFFERS),
        "underscores": "on" if site.blob else "off",
        "error_log_level": "crit" if site.blob else "error",
        "user": f"user {site.user};" if site.user else "",
        "error_pages": error_pages(refusals, blob=site.blob),
    }
    return re.sub(r"\{\{ (\w+) \}\}", lambda match: values[match[1]], TEMPLATE.read_text())
