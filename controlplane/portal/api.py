"""The portal's changes are API calls: each one the signed-in person makes through a page is
sent, in this process, through the whole middleware stack and view of the ARM API, as that
person's session. It meets the same validation, the same authorization and the same audit as
the call a client sends, and the page shows the API's own answer (its error body included).
Nothing here decides whether a change is allowed or right."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.core.handlers.base import BaseHandler
from django.core.handlers.wsgi import WSGIRequest
from django.middleware.csrf import get_token

API_VERSION = "2024-04-01"
# The request headers a call carries over from the page's own request: the session cookie,
# and what the API's CSRF check of a session's unsafe call compares (the token, and the
# origin the page's form came from: Django checked both before the page's view ran).
CARRIED_HEADERS = (
    "HTTP_COOKIE",
    "HTTP_HOST",
    "HTTP_ORIGIN",
    "HTTP_REFERER",
    "HTTP_USER_AGENT",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "REMOTE_ADDR",
    "SERVER_NAME",
    "SERVER_PORT",
    "wsgi.url_scheme",
)

_handler: BaseHandler | None = None


def _the_handler() -> BaseHandler:
    """Django's request handler with the project's middleware, loaded once. Its
    ``get_response`` sends no request_started/finished signals: the page's own request keeps
    its database connection."""
    global _handler
    if _handler is None:
        handler = BaseHandler()
        handler.load_middleware()
        _handler = handler
    return _handler


@dataclass
class Answer:
    status: int
    body: dict | list | None
    headers: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> dict:
        """The ARM error (code, message, target, details) of a refusal; {} for a success."""
        if self.ok or not isinstance(self.body, dict):
            return {}
        return self.body.get("error") or {}


def call(request, method: str, path: str, body=None, query: dict | None = None) -> Answer:
    """``method path`` as the API answers it for the person signed in to ``request``."""
    parameters = {"api-version": API_VERSION, **(query or {})}
    payload = b"" if body is None else json.dumps(body).encode()
    environ = {key: request.META[key] for key in CARRIED_HEADERS if key in request.META}
    environ.update(
        REQUEST_METHOD=method,
        PATH_INFO=path,
        SCRIPT_NAME="",
        QUERY_STRING=urlencode(parameters),
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH=str(len(payload)),
        HTTP_ACCEPT="application/json",
        HTTP_X_CSRFTOKEN=get_token(request),
    )
    environ.setdefault("wsgi.url_scheme", request.scheme)
    environ.setdefault("SERVER_NAME", "localhost")
    environ.setdefault("SERVER_PORT", "443")
    environ["wsgi.input"] = io.BytesIO(payload)
    inner = WSGIRequest(environ)
    response = _the_handler().get_response(inner)
    if hasattr(response, "render"):
        response.render()
    return Answer(response.status_code, _json(response), dict(response.items()))


def _json(response):
    if not response.get("Content-Type", "").startswith("application/json"):
        return None
    try:
        return json.loads(response.content or b"null")
    except ValueError:
        return None
