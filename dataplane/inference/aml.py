"""Azure's raw-HTTP scoring API (``@rawhttp``, ``AMLRequest``, ``AMLResponse``).

Scoring scripts import these from ``azureml_inference_server_http.api.aml_request`` /
``aml_response`` (or the older ``azureml.contrib.services``). When Azure's package is not
installed, those module names are provided from here so such scripts run unchanged.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import sys
from urllib.parse import parse_qs

from dataplane.http import Headers

# Set when the scoring script decorates run() with @rawhttp (as in Azure's server, a
# process-wide flag: one process serves one script).
raw_http_requested = False


def rawhttp(func):
    """Ask for run(request) to receive the whole HTTP request (an AMLRequest)."""
    global raw_http_requested
    raw_http_requested = True
    return func


class AMLRequest:
    """The request handed to a @rawhttp run(): the parts of a Flask request scripts use."""

    @classmethod
    def from_request(cls, request) -> AMLRequest:
        """From the transport's request (a dataplane.http.Request)."""
        return cls(request.method, request.path, request.query, request.headers, request.body)

    def __init__(self, method: str, path: str, query: str, headers: Headers, body: bytes):
        self.method = method
        self.path = path
        self.query_string = query.encode()
        self.full_path = f"{path}?{query}"
        self.headers = headers
        self.data = body
        self.args = {key: values[0] for key, values in parse_qs(query).items()}
        self.content_type = headers.get("content-type", "")
        self.mimetype = self.content_type.split(";")[0].strip()
        self.is_json = self.mimetype == "application/json" or self.mimetype.endswith("+json")

    def get_data(self, as_text: bool = False, **_):
        return self.data.decode("utf-8") if as_text else self.data

    def get_json(self, force: bool = False, silent: bool = False, **_):
        if not (force or self.is_json):
            return None
        try:
            return json.loads(self.data)
        except ValueError:
            if silent:
                return None
            raise


class AMLResponse:
    """What a run() may return to choose the status, headers and body itself."""

    def __init__(self, message, status_code, response_headers=None, json_str=False, **_):
        self.status_code = int(status_code)
        self.headers: list[tuple[str, str]] = []
        content_type = None
        if message is None:
            self.body, content_type = b"{}", "application/json"
        elif json_str:
            self.body, content_type = json.dumps(message).encode(), "application/json"
        elif isinstance(message, bytes):
            self.body = message
        else:
            self.body = str(message).encode()
        for name, value in (response_headers or {}).items():
            if name.lower() == "content-type":
                content_type = None
            for part in str(value).split(","):
                self.headers.append((name, part.strip()))
        if content_type:
            self.headers.append(("Content-Type", content_type))

    def get_data(self) -> bytes:
        return self.body


# Azure's module names for this API; packages on the way to them are empty packages.
COMPAT_MODULES = {
    "azureml_inference_server_http.api.aml_request": {"rawhttp": rawhttp, "AMLRequest": AMLRequest},
    "azureml_inference_server_http.api.aml_response": {"AMLResponse": AMLResponse},
    "azureml.contrib.services.aml_request": {"rawhttp": rawhttp, "AMLRequest": AMLRequest},
    "azureml.contrib.services.aml_response": {"AMLResponse": AMLResponse},
}
COMPAT_PACKAGES = {
    name.rsplit(".", depth)[0] for name in COMPAT_MODULES for depth in range(1, name.count(".") + 1)
}


class _CompatFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Last on sys.meta_path: answers for Azure's module names only when nothing else does,
    so an installed Azure package always wins."""

    def find_spec(self, name, path=None, target=None):
        if name in COMPAT_MODULES or name in COMPAT_PACKAGES:
            return importlib.util.spec_from_loader(name, self, is_package=name in COMPAT_PACKAGES)
        return None

    def create_module(self, spec):
        return None  # the default module object

    def exec_module(self, module):
        if module.__name__ in COMPAT_PACKAGES:
            module.__path__ = []
        for attribute, value in COMPAT_MODULES.get(module.__name__, {}).items():
            setattr(module, attribute, value)


def install_compat_modules() -> None:
    if not any(isinstance(finder, _CompatFinder) for finder in sys.meta_path):
        sys.meta_path.append(_CompatFinder())
