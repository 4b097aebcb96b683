"""Routes and responses of the inference server; every error is mapped to a status here."""

from __future__ import annotations

import json
import logging
import time
import traceback
import uuid

from dataplane.http import Request, Response
from dataplane.inference import swagger
from dataplane.inference.aml import AMLResponse
from dataplane.inference.errors import InferenceError
from dataplane.inference.scoring import UserScript

log = logging.getLogger("weir.inference")

JSON = ("content-type", "application/json")
HEADER_LIMIT = 100


def _json(status: int, payload, extra: list | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), [JSON, *(extra or [])])


class InferenceApp:
    """Maps a Request to a Response for one loaded scoring script. Never raises."""

    def __init__(self, script: UserScript, service_name: str = "weir", collector=None):
        self.script = script
        self.swagger = swagger.build(script.run_function, service_name)
        self.collector = collector  # the data collector (payload logging), when enabled

    def __call__(self, request: Request) -> Response:
        try:
            response = self._route(request)
        except Exception:  # a bug of ours must not take the replica down
            log.error("unexpected error\n%s", traceback.format_exc())
            response = _json(500, {"message": "An unexpected internal error occurred."})
        response = self._with_ids(request, response)
        if self.collector is not None and request.method in ("POST", "GET"):
            if (request.path.rstrip("/") or "/") == "/score":
                # Queued only: the records are made and written off the request's path.
                self.collector.collect(
                    request.method, request.path, request.headers, request.body, response
                )
        return response

    def _route(self, request: Request) -> Response:
        path, method = request.path.rstrip("/") or "/", request.method
        if path == "/score":
            if method in ("POST", "GET"):
                return self._score(request)
            if method == "OPTIONS":
                return Response(200)
            return _json(405, {"message": "Method not allowed"})
        if method not in ("GET", "HEAD"):
            return _json(405, {"message": "Method not allowed"})
        if path == "/":
            return Response(200, b"Healthy", [("content-type", "text/plain; charset=utf-8")])
        if path == "/readiness":
            return Response(200, b"Ready", [("content-type", "text/plain; charset=utf-8")])
        if path == "/swagger.json":
            if self.swagger is None:
                message = "Swagger not found: run() has no inference-schema decorators."
                return _json(404, {"message": message})
            return _json(200, self.swagger)
        return _json(404, {"message": f"{request.path} not found"})

    def _score(self, request: Request) -> Response:
        try:
            arguments = self.script.arguments(request)
        except InferenceError as exc:
            return _json(exc.status, {"message": str(exc)})
        started = time.perf_counter()
        try:
            output = self.script.run(arguments, request.headers)
        except InferenceError as exc:  # the built-in scripts say what is wrong with the input
            return _json(exc.status, {"message": str(exc)}, [("x-ms-run-function-failed", "False")])
        except Exception as exc:
            log.error("run() raised\n%s", traceback.format_exc())
            message = f"An unexpected error occurred in scoring script: {exc!r}"
            return _json(500, {"message": message}, [("x-ms-run-function-failed", "True")])
        elapsed = f"{(time.perf_counter() - started) * 1000:.3f}"
        if isinstance(output, AMLResponse):
            failed = "True" if output.status_code >= 500 else "False"
            headers = [*output.headers, ("x-ms-run-function-failed", failed)]
            return Response(
                output.status_code, output.body, [*headers, ("x-ms-run-fn-exec-ms", elapsed)]
            )
        try:
            body = json.dumps(output).encode()
        except (TypeError, ValueError) as exc:
            log.error("run() returned something that is not JSON: %r", exc)
            message = f"run() returned a value that cannot be sent as JSON: {exc}"
            return _json(500, {"message": message}, [("x-ms-run-function-failed", "True")])
        return Response(
            200,
            body,
            [JSON, ("x-ms-run-function-failed", "False"), ("x-ms-run-fn-exec-ms", elapsed)],
        )

    def _with_ids(self, request: Request, response: Response) -> Response:
        """Echo the tracing ids as Azure's server does (x-request-id, x-ms-request-id,
        x-ms-client-request-id)."""
        headers = request.headers
        request_id = headers.get("x-request-id") or str(uuid.uuid4())
        client_id = headers.get("x-ms-client-request-id", "")
        legacy_id = headers.get("x-ms-request-id") or client_id or request_id
        if max(len(request_id), len(client_id), len(legacy_id)) > HEADER_LIMIT:
            response = _json(
                431, {"message": f"request ids must not exceed {HEADER_LIMIT} characters"}
            )
        response.headers.append(("x-request-id", request_id[:HEADER_LIMIT]))
        response.headers.append(("x-ms-request-id", legacy_id[:HEADER_LIMIT]))
        if client_id:
            response.headers.append(("x-ms-client-request-id", client_id[:HEADER_LIMIT]))
        return response
