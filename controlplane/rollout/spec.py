"""Reading a rollout's PUT body: the candidate and baseline deployments, the default gates
and the plan of steps. Every refusal is a 400 naming the field; nothing is written before
the whole body has been read.

Shares are whole percents (0..100). Rates (``minAgreement``, ``maxErrorRate``) are
fractions from 0 to 1.

``gates.comparison`` is how the router compares the candidate's mirrored answers with the
live ones while a mirror step runs: ``"exact"`` (the default: the whole answer, numbers
within 1e-6; ``{"rule": "exact"}`` is the same), ``{"rule": "tolerance", "tolerance": t}``
or ``{"rule": "path", "path": "$.predictions", "tolerance": t}`` (contracts.comparison says
what they mean). The controller sets it as the endpoint's ``mirrorComparison`` with the
step's mirror traffic.
"""

from __future__ import annotations

from contracts.comparison import DEFAULT_TOLERANCE, MirrorComparison
from controlplane.arm.errors import bad_request
from controlplane.core.models import OnlineEndpoint
from controlplane.core.serializers.endpoint import MAX_MIRROR_PERCENT

STATUS_CLASSES = ("4xx", "5xx")
EXACT, TOLERANCE, PATH = "exact", "tolerance", "path"
# Each rule with the fields it takes besides ``rule``.
COMPARISONS = {EXACT: (), TOLERANCE: ("tolerance",), PATH: ("path", "tolerance")}
GATE_KEYS = (
    "minAgreement",
    "comparison",
    "maxErrorRate",
    "errorStatusClasses",
    "maxP99Ms",
    "maxP99Ratio",
)
STEP_KEYS = ("traffic", "baselineTraffic", "mirror", "durationSeconds", "minRequests", "gates")
PROPERTY_KEYS = ("candidate", "baseline", "gates", "steps")
MAX_STEPS = 20
MAX_DURATION = 7 * 24 * 3600
DEFAULT_GATES = {"comparison": "exact", "errorStatusClasses": ["5xx"]}


def _object(value, target: str) -> dict:
    if not isinstance(value, dict):
        raise bad_request(f"{target} must be an object.", target)
    return value


def _known(value: dict, keys, target: str) -> None:
    for key in value:
        if key not in keys:
            raise bad_request(
                f"{target}.{key} is not a field of a rollout {target.rsplit('.', 1)[-1]}; "
                f"the fields are {', '.join(keys)}.",
                f"{target}.{key}",
            )


def _number(value, target: str, low: float, high: float, whole: bool = False):
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request(f"{target} must be a number.", target)
    if whole and value != int(value):
        raise bad_request(f"{target} must be a whole number.", target)
    if not low <= value <= high:
        raise bad_request(f"{target} must be from {low:g} to {high:g}, not {value:g}.", target)
    return int(value) if whole else value


def read_gates(value, target: str) -> dict:
    """Gates as sent (only those given), checked."""
    gates = _object(value, target)
    _known(gates, GATE_KEYS, target)
    out = {}
    if gates.get("minAgreement") is not None:
        out["minAgreement"] = _number(gates["minAgreement"], f"{target}.minAgreement", 0, 1)
    if gates.get("comparison") is not None:
        out["comparison"] = read_comparison(gates["comparison"], f"{target}.comparison")
    if gates.get("maxErrorRate") is not None:
        out["maxErrorRate"] = _number(gates["maxErrorRate"], f"{target}.maxErrorRate", 0, 1)
    if gates.get("errorStatusClasses") is not None:
        classes = gates["errorStatusClasses"]
        if (
            not isinstance(classes, list)
            or not classes
            or any(c not in STATUS_CLASSES for c in classes)
        ):
            raise bad_request(
                f"{target}.errorStatusClasses is a non-empty list of {', '.join(STATUS_CLASSES)}.",
                f"{target}.errorStatusClasses",
            )
        out["errorStatusClasses"] = sorted(set(classes))
    if gates.get("maxP99Ms") is not None:
        out["maxP99Ms"] = _number(gates["maxP99Ms"], f"{target}.maxP99Ms", 0.001, 3_600_000)
    if gates.get("maxP99Ratio") is not None:
        out["maxP99Ratio"] = _number(gates["maxP99Ratio"], f"{target}.maxP99Ratio", 0.01, 1000)
    return out


def read_comparison(value, target: str):
    """ "exact", or {"rule": "tolerance", "tolerance"} / {"rule": "path", "path",
    "tolerance"} with the tolerance filled in."""
    if value == EXACT:
        return EXACT
    if not isinstance(value, dict):
        raise bad_request(
            f"{target} is 'exact' or an object with a rule ({', '.join(COMPARISONS)}).", target
        )
    rule = value.get("rule")
    if rule not in COMPARISONS:
        raise bad_request(
            f"{target}.rule is one of {', '.join(COMPARISONS)}, not {rule!r}.", f"{target}.rule"
        )
    fields = COMPARISONS[rule]
    for key in value:
        if key != "rule" and key not in fields:
            raise bad_request(
                f"{target}.{key} is not a field of the {rule} rule"
                + (f"; its fields are {', '.join(fields)}." if fields else "."),
                f"{target}.{key}",
            )
    if rule == EXACT:
        return EXACT
    if rule == TOLERANCE and "tolerance" not in value:
        raise bad_request(
            f"{target}.tolerance is needed by the tolerance rule.", f"{target}.tolerance"
        )
    tolerance = value.get("tolerance", DEFAULT_TOLERANCE)
    if (
        isinstance(tolerance, bool)
        or not isinstance(tolerance, int | float)
        or not (0 <= tolerance < float("inf"))
    ):
        raise bad_request(
            f"{target}.tolerance is a finite number, at least 0 (numbers agree when "
            "|shadow - live| <= tolerance * max(1, |live|)).",
            f"{target}.tolerance",
        )
    out = {"rule": rule, "tolerance": tolerance}
    if rule == PATH:
        path = value.get("path")
        if not isinstance(path, str):
            raise bad_request(
                f"{target}.path is needed by the path rule: a JSONPath such as $.predictions.",
                f"{target}.path",
            )
        try:
            MirrorComparison.of(tolerance, path)
        except ValueError as exc:
            raise bad_request(f"{target}.path: {exc}.", f"{target}.path") from None
        out["path"] = path
    return out


def endpoint_comparison(comparison) -> dict | None:
    """The endpoint's ``mirrorComparison`` for a rollout's comparison (None: the default)."""
    if comparison in (None, EXACT) or comparison.get("rule") == EXACT:
        return None
    return {"tolerance": comparison["tolerance"], "path": comparison.get("path")}


def read_step(value, index: int) -> dict:
    target = f"properties.steps[{index}]"
    step = _object(value, target)
    _known(step, STEP_KEYS, target)
    traffic, mirror = step.get("traffic"), step.get("mirror")
    if (traffic is None) == (mirror is None):
        raise bad_request(
            f"{target} gives the candidate either live traffic (traffic) or mirrored traffic "
            "(mirror), not both nor neither.",
            target,
        )
    out: dict = {}
    if traffic is not None:
        out["traffic"] = _number(traffic, f"{target}.traffic", 1, 100, whole=True)
        baseline = step.get("baselineTraffic", 100 - out["traffic"])
        baseline = _number(baseline, f"{target}.baselineTraffic", 0, 100, whole=True)
        if baseline + out["traffic"] != 100:
            raise bad_request(
                f"{target}: the candidate's traffic ({out['traffic']}) and the baseline's "
                f"({baseline}) must add up to 100.",
                f"{target}.baselineTraffic",
            )
        out["baselineTraffic"] = baseline
    else:
        if step.get("baselineTraffic") not in (None, 100):
            raise bad_request(
                f"{target}: during a mirror step the baseline keeps all the live traffic (100).",
                f"{target}.baselineTraffic",
            )
        out["mirror"] = _number(mirror, f"{target}.mirror", 1, MAX_MIRROR_PERCENT, whole=True)
        out["baselineTraffic"] = 100
    if step.get("durationSeconds") is None and step.get("minRequests") is None:
        raise bad_request(
            f"{target} needs durationSeconds, minRequests or both: when it may pass.",
            f"{target}.durationSeconds",
        )
    out["durationSeconds"] = _number(
        step.get("durationSeconds", 0), f"{target}.durationSeconds", 0, MAX_DURATION
    )
    out["minRequests"] = _number(
        step.get("minRequests", 0), f"{target}.minRequests", 0, 10**9, whole=True
    )
    if step.get("gates") is not None:
        out["gates"] = read_gates(step["gates"], f"{target}.gates")
    return out


def read(endpoint: OnlineEndpoint, body) -> dict:
    """The rollout a PUT asks for: {candidate, baseline, gates, steps}, with the baseline
    found when not named. Raises a 400 ArmError naming the first bad field."""
    body = _object(body, "body")
    props = _object(body.get("properties"), "properties")
    _known(props, PROPERTY_KEYS, "properties")
    names = {d.name.lower(): d for d in endpoint.deployments.all()}
    candidate = props.get("candidate")
    if not isinstance(candidate, str) or not candidate:
        raise bad_request(
            "properties.candidate names the deployment to roll out.", "properties.candidate"
        )
    if candidate.lower() not in names:
        raise bad_request(
            f"properties.candidate: endpoint '{endpoint.name}' has no deployment '{candidate}'.",
            "properties.candidate",
        )
    candidate = names[candidate.lower()].name
    live = {name: share for name, share in (endpoint.traffic or {}).items() if share}
    baseline = props.get("baseline")
    if baseline is None:
        holders = [name for name, share in live.items() if share == 100]
        if not holders:
            raise bad_request(
                "properties.baseline: no deployment holds all the endpoint's live traffic "
                f"now ({live or 'none'}); name the baseline once one does.",
                "properties.baseline",
            )
        baseline = holders[0]
    if not isinstance(baseline, str) or baseline.lower() not in names:
        raise bad_request(
            f"properties.baseline: endpoint '{endpoint.name}' has no deployment '{baseline}'.",
            "properties.baseline",
        )
    baseline = names[baseline.lower()].name
    if baseline.lower() == candidate.lower():
        raise bad_request(
            "properties.candidate is the baseline; a rollout moves traffic to another deployment.",
            "properties.candidate",
        )
    if live.get(baseline) != 100:
        raise bad_request(
            f"properties.baseline: '{baseline}' must hold all the endpoint's live traffic when "
            f"the rollout starts; the traffic is {live or 'none'}.",
            "properties.baseline",
        )
    for target, name in (("properties.candidate", candidate), ("properties.baseline", baseline)):
        deployment = names[name.lower()]
        if deployment.provisioning_state != "Succeeded":
            raise bad_request(
                f"{target}: deployment '{name}' is {deployment.provisioning_state}; it must have "
                "Succeeded.",
                target,
            )
    gates = {**DEFAULT_GATES, **read_gates(props.get("gates") or {}, "properties.gates")}
    steps = props.get("steps")
    if not isinstance(steps, list) or not steps:
        raise bad_request("properties.steps is a non-empty list of steps.", "properties.steps")
    if len(steps) > MAX_STEPS:
        raise bad_request(f"properties.steps has at most {MAX_STEPS} steps.", "properties.steps")
    return {
        "candidate": candidate,
        "baseline": baseline,
        "gates": gates,
        "steps": [read_step(step, index) for index, step in enumerate(steps)],
    }


def gates_of(rollout, step: dict) -> dict:
    """The gates that hold for ``step``: the rollout's, with the step's own over them."""
    return {**rollout.gates, **(step.get("gates") or {})}
