"""Long-running-operation responses: where a client polls, and how often."""

from __future__ import annotations

from urllib.parse import quote

from django.conf import settings
from rest_framework.response import Response

from contracts.arm import PROVIDER


def api_url(request, path: str) -> str:
    """``path`` on the API as an absolute URL: on the host the client called, or, with no
    request at hand, on WEIR_API_URL."""
    if request is not None:
        return request.build_absolute_uri(path)
    return settings.WEIR_API_URL.rstrip("/") + path


def operation_url(request, operation, kind: str) -> str:
    """Absolute URL of an operation's status (``mfeOperationsStatus``) or result
    (``mfeOperationResults``) resource, on the host the client called."""
    api_version = request.query_params.get("api-version", "")
    path = (
        f"/subscriptions/{operation.subscription_id}/providers/{PROVIDER}"
        f"/locations/{operation.location}/{kind}/{operation.id}"
    )
    return request.build_absolute_uri(path) + "?api-version=" + quote(api_version)


def status_url(request, operation) -> str:
    return operation_url(request, operation, "mfeOperationsStatus")


def result_url(request, operation) -> str:
    return operation_url(request, operation, "mfeOperationResults")


def put_response(request, body: dict, *, created: bool, operation, etag: str) -> Response:
    """201 (create) or 200 (update) with the body; Azure-AsyncOperation when work runs."""
    response = Response(body, status=201 if created else 200)
    response["ETag"] = quote_etag(etag)
    if operation is not None:
        response["Azure-AsyncOperation"] = status_url(request, operation)
        response["x-ms-async-operation-timeout"] = settings.WEIR_ASYNC_OPERATION_TIMEOUT
    return response


def accepted_response(request, operation) -> Response:
    """202 with no body: ``Location`` (answers 202 until done, then the final result),
    ``Azure-AsyncOperation`` and ``Retry-After``."""
    response = Response(status=202)
    response["Location"] = result_url(request, operation)
    response["Azure-AsyncOperation"] = status_url(request, operation)
    response["Retry-After"] = str(settings.WEIR_RETRY_AFTER)
    response["x-ms-async-operation-timeout"] = settings.WEIR_ASYNC_OPERATION_TIMEOUT
    return response


def quote_etag(etag: str) -> str:
    return f'"{etag}"'


def resource_response(serializer_class, resource, status: int = 200, request=None) -> Response:
    """A resource's ARM body with its ``ETag`` header (URLs in it on the host ``request``
    called)."""
    response = Response(
        serializer_class(resource, context={"request": request}).data, status=status
    )
    response["ETag"] = quote_etag(resource.etag)
    return response
