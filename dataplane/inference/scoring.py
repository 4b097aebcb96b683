"""The user's scoring script: load it, call init() once, call run() per request.

run() is called the way Azure's inference server calls it:
- undecorated: run(<body as str>) (or run(<name>=..., request_headers=...)),
- @input_schema-decorated: run(**<JSON body's fields>), the decorators converting them,
- @rawhttp: run(<AMLRequest>).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs

from dataplane.inference import aml
from dataplane.inference.errors import BadInput, ScriptError, UnsupportedInput

log = logging.getLogger("weir.inference")

try:  # inference-schema lives in the user's environment, when the script uses it
    from inference_schema.schema_util import is_schema_decorated
except ImportError:  # pragma: no cover - environments without inference-schema

    def is_schema_decorated(func) -> bool:
        return False


RAW, STRING, SCHEMA = "raw", "string", "schema"


class UserScript:
    def __init__(self, entry_script: str):
        self.entry_script = Path(entry_script).resolve()
        self.mode = STRING
        self.parameters: list[inspect.Parameter] = []
        self.input_name = ""
        self.wants_headers = False
        self.run_function: Callable | None = None
        self._init: Callable | None = None

    def load(self) -> None:
        """Import the script; it must define init() and run()."""
        aml.install_compat_modules()
        # Scripts import their neighbours (utils.py beside score.py), as on Azure.
        sys.path.insert(0, str(self.entry_script.parent))
        try:
            spec = importlib.util.spec_from_file_location("entry_module", self.entry_script)
            module = importlib.util.module_from_spec(spec)
            sys.modules["entry_module"] = module
            spec.loader.exec_module(module)
        except BaseException as exc:
            raise ScriptError(f"Failed to import {self.entry_script.name}: {exc!r}") from exc
        for name in ("init", "run"):
            if not callable(getattr(module, name, None)):
                raise ScriptError(f"{self.entry_script.name} does not define {name}().")
        driver = getattr(module, "driver_module", None)
        self.run_function = (
            driver.run if driver is not None and hasattr(driver, "run") else module.run
        )
        self._init = module.init
        self._analyze_run()

    def _analyze_run(self) -> None:
        parameters = list(inspect.signature(self.run_function).parameters.values())
        if any(p.kind not in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters):
            raise ScriptError("run() cannot take positional-only arguments, *args or **kwargs.")
        self.wants_headers = any(p.name == "request_headers" for p in parameters)
        parameters = [p for p in parameters if p.name != "request_headers"]
        if not parameters:
            raise ScriptError("run() needs an argument for the input data.")
        self.parameters, self.input_name = parameters, parameters[0].name
        schema = is_schema_decorated(self.run_function)
        if aml.raw_http_requested and schema:
            raise ScriptError("run() cannot be decorated with both @rawhttp and @input_schema.")
        self.mode = RAW if aml.raw_http_requested else SCHEMA if schema else STRING
        log.info("run() takes %s input", self.mode)

    def init(self) -> None:
        os.environ.setdefault("AZUREML_MODEL_DIR", os.getcwd())
        try:
            self._init()
        except BaseException as exc:
            raise ScriptError(f"init() raised {exc!r}") from exc

    def arguments(self, request) -> dict:
        """The keyword arguments run() gets for ``request`` (a dataplane.http.Request)."""
        if self.mode == RAW:
            return {self.input_name: aml.AMLRequest.from_request(request)}
        if request.method == "GET":
            fields = query_fields(request.query)
            if self.mode == STRING:
                return {self.input_name: json.dumps(fields)}
            return self._schema_arguments(fields)
        if self.mode == STRING:
            try:
                return {self.input_name: request.body.decode("utf-8")}
            except UnicodeDecodeError as exc:
                raise BadInput(f"Input cannot be decoded as UTF-8: {exc}") from None
        if not request.is_json:
            raise UnsupportedInput("Expects Content-Type to be application/json")
        try:
            body = json.loads(request.body)
        except ValueError as exc:
            if not request.body:
                raise BadInput("POST body is empty. Expecting a JSON dictionary.") from None
            raise BadInput(f"POST body could not be decoded as JSON: {exc}") from None
        if not isinstance(body, dict):
            raise BadInput("POST body should be a JSON dictionary.")
        return self._schema_arguments(body)

    def _schema_arguments(self, fields: dict) -> dict:
        arguments = {}
        for parameter in self.parameters:
            value = fields.get(parameter.name, parameter.default)
            if value is inspect.Parameter.empty:
                raise BadInput(f"A value is not provided for the {parameter.name!r} parameter.")
            arguments[parameter.name] = value
        return arguments

    def run(self, arguments: dict, headers: dict):
        if self.wants_headers:
            return self.run_function(**arguments, request_headers=headers)
        return self.run_function(**arguments)


def query_fields(query: str) -> dict:
    """Query parameters as JSON values (a repeated name becomes a list), as Azure does."""
    fields = {}
    for name, values in parse_qs(query, keep_blank_values=True).items():
        parsed = [_json_or_text(value) for value in values]
        fields[name] = parsed[0] if len(parsed) == 1 else parsed
    return fields


def _json_or_text(value: str):
    try:
        return json.loads(value)
    except ValueError:
        return value
