"""ARM error bodies: every failure is ``{"error": {code, message, target, details}}``."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from controlplane.core.states import IllegalTransition

log = logging.getLogger(__name__)


class ArmError(exceptions.APIException):
    """An error with an ARM code; raise it anywhere under a view."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        target: str | None = None,
        details: list[dict] | None = None,
    ):
        self.status_code = status_code
        self.code = code
        self.message = message
        self.target = target
        self.details = details or []
        super().__init__(message)

    def body(self) -> dict:
        return error_body(self.code, self.message, self.target, self.details)


def error_body(code: str, message: str, target: str | None = None, details=None) -> dict:
    return {
        "error": {
            "code": code,
            "message": message,
            "target": target,
            "details": details or [],
            "additionalInfo": [],
        }
    }


class Gone(ArmError):
    """The resource was deleted by another request between this request's read and its
    write: a 404 for a write, and for a DELETE the 204 of a resource that is not there."""

    def __init__(self, name: str):
        super().__init__(404, "ResourceNotFound", f"'{name}' was deleted by another request.")


def bad_request(message: str, target: str | None = None) -> ArmError:
    return ArmError(400, "ValidationError", message, target)


def not_found(kind: str, name: str) -> ArmError:
    return ArmError(404, "ResourceNotFound", f"{kind} '{name}' was not found.")


def conflict(message: str, target: str | None = None) -> ArmError:
    return ArmError(409, "Conflict", message, target)


def detail_code(item) -> str:
    """A refusal's ARM code: one a validator raised with (PascalCase, ``InvalidTags``), or
    ValidationError for DRF's own (``invalid``, ``max_length``)."""
    code = getattr(item, "code", None)
    return code if isinstance(code, str) and code[:1].isupper() else "ValidationError"


def flatten_validation(detail, prefix: str = "") -> list[dict]:
    """Turn DRF's nested error detail into ARM details, each naming its JSON field."""
    if isinstance(detail, dict):
        out = []
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                out.extend(flatten_validation(value, prefix))
            elif isinstance(key, int):  # a ListField's item: ``members[0]``
                out.extend(flatten_validation(value, f"{prefix}[{key}]"))
            else:
                out.extend(flatten_validation(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [
                {"code": detail_code(item), "message": str(item), "target": prefix or None}
                for item in detail
            ]
        out = []
        for index, item in enumerate(detail):
            if item:
                out.extend(flatten_validation(item, f"{prefix}[{index}]"))
        return out
    return [{"code": detail_code(detail), "message": str(detail), "target": prefix or None}]


_CODES = {
    exceptions.NotAuthenticated: "AuthenticationFailed",
    exceptions.AuthenticationFailed: "AuthenticationFailed",
    exceptions.PermissionDenied: "AuthorizationFailed",
    exceptions.NotFound: "ResourceNotFound",
    exceptions.MethodNotAllowed: "MethodNotAllowed",
    exceptions.ParseError: "InvalidRequestContent",
    exceptions.UnsupportedMediaType: "UnsupportedMediaType",
    exceptions.NotAcceptable: "NotAcceptable",
    exceptions.Throttled: "TooManyRequests",
}


def content_too_large(limit: int) -> tuple[str, str]:
    """ARM's code and message for a body over ``limit`` bytes, whether nginx refuses it (from
    Content-Length) or Django does (DATA_UPLOAD_MAX_MEMORY_SIZE)."""
    return (
        "RequestContentTooLarge",
        f"The request content size exceeds the maximum size of {limit} bytes.",
    )


def refused_request(exc: SuspiciousOperation) -> tuple[int, dict]:
    """Django's refusals of a request (a body over DATA_UPLOAD_MAX_MEMORY_SIZE, too many query
    parameters, ...) as ARM answers them, instead of its HTML error page."""
    if isinstance(exc, RequestDataTooBig):
        return 413, error_body(*content_too_large(settings.DATA_UPLOAD_MAX_MEMORY_SIZE))
    if isinstance(exc, TooManyFieldsSent):
        limit = settings.DATA_UPLOAD_MAX_NUMBER_FIELDS
        return 400, error_body("BadRequest", f"The request has more than {limit} parameters.")
    return 400, error_body("BadRequest", "The request was refused as malformed.")


def arm_exception_handler(exc, context):
    """DRF's EXCEPTION_HANDLER: every API exception becomes an ARM error body."""
    if isinstance(exc, ArmError):
        return Response(exc.body(), status=exc.status_code)
    if isinstance(exc, SuspiciousOperation):
        status_code, body = refused_request(exc)
        return Response(body, status=status_code)
    if isinstance(exc, IllegalTransition):
        message = f"An operation is in progress on this resource ({exc.current}); retry later."
        return Response(error_body("Conflict", message), status=status.HTTP_409_CONFLICT)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    if isinstance(exc, exceptions.ValidationError):
        details = flatten_validation(exc.detail)
        first = details[0] if details else {"message": "Invalid request.", "target": None}
        code = details[0]["code"] if details else "ValidationError"
        body = error_body(code, first["message"], first["target"], details)
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    response = exception_handler(exc, context)
    if response is None:
        return None
    fallback = "BadRequest" if response.status_code < 500 else "InternalServerError"
    code = next((c for klass, c in _CODES.items() if isinstance(exc, klass)), fallback)
    message = exc.detail if isinstance(getattr(exc, "detail", None), str) else str(exc)
    response.data = error_body(code, message)
    return response


def bad_request_view(request, exception=None):
    """Django's handler400, for a refusal raised outside a view (in middleware)."""
    if isinstance(exception, SuspiciousOperation):
        status_code, body = refused_request(exception)
    else:
        status_code, body = 400, error_body("BadRequest", "The request is malformed.")
    return JsonResponse(body, status=status_code)


def not_found_view(request, exception=None):
    return JsonResponse(
        error_body("NotFound", f"The requested path '{request.path}' was not found."), status=404
    )


def server_error_view(request):
    return JsonResponse(
        error_body("InternalServerError", "The server hit an unexpected error."), status=500
    )
