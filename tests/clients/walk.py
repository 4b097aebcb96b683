"""What every client walk here prints: one JSON line per step, ``{"step", "ok", "detail"}``
(tests/system/test_azure_ai_ml.py's ``walked`` reads them). Standard library only, so the
scripts of every client virtualenv (azure-ai-ml, azureml-core) can import it."""

from __future__ import annotations

import json
import sys
import traceback


def step(name: str, action) -> None:
    """Run one step of a walk and print its line; on failure the exception and its
    traceback are the detail, and the walk stops."""
    try:
        detail = action()
    except BaseException as error:  # noqa: BLE001 - every failure is reported, then we stop
        text = "".join(traceback.format_exception(error))
        print(json.dumps({"step": name, "ok": False, "detail": text}), flush=True)
        sys.exit(1)
    print(json.dumps({"step": name, "ok": True, "detail": detail}, default=str), flush=True)
