"""Rollout YAML (snake_case, as the CLI's other YAML) to the body of a PUT on
``onlineEndpoints/{e}/rollouts/{name}``, and a rollout resource back to the snake_case
object the CLI prints.

The shape is checked here (unknown keys, a missing candidate or plan, a step with both or
neither of ``traffic`` and ``mirror``, a number that is not one), naming the field and the
file, before anything is sent; ranges, deployments and traffic are the server's to judge
(controlplane/rollout/spec.py), and its 400 names the field too. ``duration_seconds`` is
seconds, as the API has it; rates are fractions from 0 to 1.
"""

from __future__ import annotations

import re

from cli.errors import CliError
from cli.specs import Spec, require

# YAML key -> the API's field.
GATE_KEYS = {
    "min_agreement": "minAgreement",
    "comparison": "comparison",
    "max_error_rate": "maxErrorRate",
    "error_status_classes": "errorStatusClasses",
    "max_p99_ms": "maxP99Ms",
    "max_p99_ratio": "maxP99Ratio",
}
STEP_KEYS = {
    "traffic": "traffic",
    "baseline_traffic": "baselineTraffic",
    "mirror": "mirror",
    "duration_seconds": "durationSeconds",
    "min_requests": "minRequests",
    "gates": "gates",
}
ROLLOUT_KEYS = ("$schema", "name", "endpoint_name", "candidate", "baseline", "gates", "steps")
NUMBERS = {"min_agreement", "max_error_rate", "max_p99_ms", "max_p99_ratio"} | {
    "traffic",
    "baseline_traffic",
    "mirror",
    "duration_seconds",
    "min_requests",
}
FINAL = ("Succeeded", "RolledBack", "Failed")
GATE_NAMES = {field: key for key, field in GATE_KEYS.items()}


def _unknown(spec: Spec, mapping: dict, keys, where: str, kind: str) -> None:
    for key in mapping:
        if key not in keys:
            raise CliError(
                f"unknown key '{where}{key}'{spec.where()} ({kind} has {', '.join(keys)})"
            )


def _mapping(spec: Spec, value, field: str) -> dict:
    if not isinstance(value, dict):
        raise CliError(f"'{field}' must be a mapping of keys{spec.where()}")
    return value


def _numbers(spec: Spec, mapping: dict, where: str) -> None:
    for key, value in mapping.items():
        if key in NUMBERS and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise CliError(f"'{where}{key}' must be a number, not '{value}'{spec.where()}")


def gates_body(spec: Spec, value, field: str) -> dict:
    gates = _mapping(spec, value, field)
    _unknown(spec, gates, GATE_KEYS, f"{field}.", "gates")
    _numbers(spec, gates, f"{field}.")
    classes = gates.get("error_status_classes")
    if classes is not None and not isinstance(classes, list):
        raise CliError(
            f"'{field}.error_status_classes' is a list, e.g. [4xx, 5xx], not '{classes}'"
            f"{spec.where()}"
        )
    return {GATE_KEYS[key]: value for key, value in gates.items()}


def step_body(spec: Spec, value, index: int) -> dict:
    field = f"steps[{index}]"
    step = _mapping(spec, value, field)
    _unknown(spec, step, STEP_KEYS, f"{field}.", "a step")
    _numbers(spec, step, f"{field}.")
    if ("traffic" in step) == ("mirror" in step):
        raise CliError(
            f"'{field}' gives the candidate either 'traffic' (live, %) or 'mirror' (copies, %), "
            f"not both nor neither{spec.where()}"
        )
    if "duration_seconds" not in step and "min_requests" not in step:
        raise CliError(
            f"'{field}' needs 'duration_seconds', 'min_requests' or both (when it may pass)"
            f"{spec.where()}"
        )
    body = {STEP_KEYS[key]: value for key, value in step.items() if key != "gates"}
    if step.get("gates") is not None:
        body["gates"] = gates_body(spec, step["gates"], f"{field}.gates")
    return body


def check_rollout(spec: Spec) -> None:
    """Everything about the YAML that can be known wrong without the server."""
    _unknown(spec, spec, ROLLOUT_KEYS, "", "a rollout")
    require(spec, "name", "the rollout's name; or --name")
    require(spec, "endpoint_name", "the endpoint it rolls out on; or --endpoint-name")
    candidate = require(spec, "candidate", "the deployment to roll out")
    if not isinstance(candidate, str):
        raise CliError(f"'candidate' names a deployment, not '{candidate}'{spec.where()}")
    baseline = spec.get("baseline")
    if baseline is not None and not isinstance(baseline, str):
        raise CliError(f"'baseline' names a deployment, not '{baseline}'{spec.where()}")
    steps = spec.get("steps")
    if not isinstance(steps, list) or not steps:
        raise CliError(
            f"'steps' is required{spec.where()} (a list of steps, each with 'traffic' or "
            "'mirror' and 'duration_seconds' or 'min_requests')"
        )


def rollout_body(spec: Spec) -> dict:
    """The PUT body; raises CliError naming the first bad field."""
    check_rollout(spec)
    properties: dict = {"candidate": spec["candidate"]}
    if spec.get("baseline"):
        properties["baseline"] = spec["baseline"]
    if spec.get("gates") is not None:
        properties["gates"] = gates_body(spec, spec["gates"], "gates")
    properties["steps"] = [step_body(spec, step, i) for i, step in enumerate(spec["steps"])]
    return {"properties": properties}


# ---- resources back ------------------------------------------------------------------------
def snake(name: str) -> str:
    """``maxP99Ms`` -> ``max_p99_ms``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def snake_keys(value):
    """Keys in snake_case all the way down; gate names (values of ``gate``) too, as the
    YAML spells them."""
    if isinstance(value, list):
        return [snake_keys(item) for item in value]
    if not isinstance(value, dict):
        return value
    out = {snake(key): snake_keys(item) for key, item in value.items()}
    if isinstance(out.get("gate"), str):
        out["gate"] = GATE_NAMES.get(out["gate"], out["gate"])
    return out


def rollout_entity(resource: dict, endpoint_name: str) -> dict:
    properties = resource.get("properties", {})
    return {
        "name": resource.get("name"),
        "id": resource.get("id"),
        "endpoint_name": endpoint_name,
        "candidate": properties.get("candidate"),
        "baseline": properties.get("baseline"),
        "status": properties.get("status"),
        "phase": properties.get("phase"),
        # 0-based, as each decision's ``step``.
        "current_step": properties.get("currentStep"),
        "step_started_at": properties.get("stepStartedAt"),
        "ended_at": properties.get("endedAt"),
        "gates": snake_keys(properties.get("gates") or {}),
        "steps": snake_keys(properties.get("steps") or []),
        "reading": snake_keys(properties.get("reading")),
        "decisions": snake_keys(properties.get("decisions") or []),
        "error": properties.get("error"),
    }
