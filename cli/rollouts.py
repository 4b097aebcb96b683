"""``weir online-endpoint rollout``: start a progressive rollout from YAML and watch it to its
end, show one with its gates and decisions, list them, pause, resume and abort one
(``onlineEndpoints/{e}/rollouts/{name}``)."""

from __future__ import annotations

import time

from cli import output, specs
from cli.client import Client
from cli.common import client_for, command
from cli.errors import CliError
from cli.progress import Progress
from cli.rollout_specs import FINAL, rollout_body, rollout_entity

POLL_SECONDS = 1.0
# The decisions that say why a rollout did not succeed (the last of them is the reason).
WHY = ("StepFailed", "Aborted", "TrafficNotSet", "Failed")


def rollouts_path(client: Client, endpoint: str) -> str:
    return f"{client.workspace_path()}/onlineEndpoints/{endpoint}/rollouts"


# ---- commands ------------------------------------------------------------------------------
def rollout_start(args):
    spec = specs.load(args.file, args.set, name=args.name, endpoint_name=args.endpoint_name)
    body = rollout_body(spec)
    client = client_for(args)
    endpoint, name = spec["endpoint_name"], spec["name"]
    path = f"{rollouts_path(client, endpoint)}/{name}"
    rollout = rollout_entity(client.call("PUT", path, body).json(), endpoint)
    if not args.wait:
        return rollout
    rollout = watch(client, path, rollout)
    if rollout["status"] != "Succeeded":
        raise CliError(f"rollout {name} ended {rollout['status']}: {why(rollout)}")
    return rollout


def rollout_show(args):
    client = client_for(args)
    path = f"{rollouts_path(client, args.endpoint_name)}/{args.name}"
    return rollout_entity(client.get(path), args.endpoint_name)


def rollout_list(args):
    client = client_for(args)
    items = client.list(rollouts_path(client, args.endpoint_name))
    return [rollout_entity(item, args.endpoint_name) for item in items]


def rollout_action(args):
    client = client_for(args)
    path = f"{rollouts_path(client, args.endpoint_name)}/{args.name}/{args.action}"
    return rollout_entity(client.call("POST", path).json(), args.endpoint_name)


def watch(client: Client, path: str, rollout: dict) -> dict:
    """Poll the rollout until it ends: its step, phase and gates on the progress line, each
    new decision printed as it appears; the rollout as it ended."""
    progress = Progress(f"Rollout {rollout['name']}")
    seen = 0
    try:
        while True:
            for decision in rollout["decisions"][seen:]:
                progress.note(decision_line(decision, len(rollout["steps"])))
            seen = len(rollout["decisions"])
            if rollout["status"] in FINAL:
                progress.done(rollout["status"])
                return rollout
            progress.update(position(rollout), reading_text(rollout.get("reading")))
            time.sleep(POLL_SECONDS)
            rollout = rollout_entity(client.get(path), rollout["endpoint_name"])
    except KeyboardInterrupt:
        raise CliError(
            f"stopped watching; rollout {rollout['name']} goes on (`weir online-endpoint "
            f"rollout show -e {rollout['endpoint_name']} -n {rollout['name']}`)",
            130,
        ) from None


def why(rollout: dict) -> str:
    if rollout.get("error"):
        return rollout["error"].get("message") or rollout["error"].get("code", "")
    reasons = [d for d in rollout["decisions"] if d.get("event") in WHY]
    last = reasons[-1] if reasons else (rollout["decisions"] or [{}])[-1]
    return last.get("reason") or rollout["status"]


# ---- text for a person ---------------------------------------------------------------------
def describe(step: dict | None) -> str:
    if not step:
        return ""
    if "mirror" in step:
        return f"mirror {step['mirror']}%"
    return f"traffic {step['traffic']}%, baseline {step.get('baseline_traffic')}%"


def position(rollout: dict) -> str:
    """``Running, step 2/3 Observing (traffic 20%, baseline 80%)``."""
    steps, index = rollout["steps"], rollout.get("current_step") or 0
    text = rollout["status"]
    if rollout["status"] in ("Running", "Paused") and index < len(steps):
        doing = {
            "Promoting": f"{rollout['candidate']} to 100%",
            "RollingBack": f"{rollout['baseline']} to 100%",
        }.get(rollout["phase"]) or describe(steps[index])
        text += f", step {index + 1}/{len(steps)} {rollout['phase']} ({doing})"
    return text


def _number(value) -> str:
    return "-" if value is None else f"{value:g}"


def threshold_text(gate: dict) -> str:
    """``<= 0.01``; ``<= 18 (1.5x baseline)`` for the p99 ratio (its threshold is in ms)."""
    sign = ">=" if gate["gate"].startswith("min") else "<="
    text = f"{sign} {_number(gate.get('threshold'))}"
    if gate.get("ratio") is not None:
        text += f" ({gate['ratio']:g}x baseline)"
    return text


def passed_text(gate: dict) -> str:
    # A gate without data (no baseline requests for the ratio) neither passes nor fails.
    return {True: "ok", False: "FAIL"}.get(gate.get("passed"), "no data")


def gate_text(gate: dict) -> str:
    """``max_error_rate 0.002 <= 0.01 ok``."""
    value = _number(gate.get("value"))
    return f"{gate['gate']} {value} {threshold_text(gate)} {passed_text(gate)}"


def window_text(window: dict | None) -> str:
    if not window:
        return ""
    seconds = f" in {window['seconds']:g} s" if window.get("seconds") is not None else ""
    if "mirrored" in window:
        return f"{window['mirrored']} mirrored, {window.get('agreed', 0)} agreed{seconds}"
    return f"{window.get('requests', 0)} requests, {window.get('errors', 0)} errors{seconds}"


def reading_text(reading: dict | None) -> str:
    """The current step's gates as last read, and what the step waits for."""
    if not reading:
        return ""
    parts = [", ".join(gate_text(g) for g in reading.get("gates") or [])]
    parts.append(window_text(reading.get("window")))
    if reading.get("verdict") in (None, "Wait"):
        parts.append(reading.get("reason") or "")
    return "; ".join(part for part in parts if part)


def decision_line(decision: dict, steps: int) -> str:
    """``12:03:04 step 1/3 StepPassed Pass: every gate held ... [max_error_rate 0 <= 0.01 ok]``."""
    clock = (decision.get("time") or "")[11:19]
    verdict = f" {decision['verdict']}" if decision.get("verdict") else ""
    line = f"{clock} step {decision.get('step', 0) + 1}/{steps} {decision['event']}{verdict}"
    if decision.get("reason"):
        line += f": {decision['reason']}"
    if decision.get("gates"):
        line += f" [{', '.join(gate_text(g) for g in decision['gates'])}]"
    elif decision.get("event") == "RolledBack" and decision.get("window"):
        line += f" (the candidate: {window_text(decision['window'])})"
    return line


def view(result) -> str:
    """``-o table``: a rollout as a person reads it (its state, the current gates against
    their thresholds, every decision), or a row per rollout for a list."""
    if isinstance(result, list):
        return output.table(
            [
                {
                    "name": r["name"],
                    "status": r["status"],
                    "phase": r["phase"],
                    "step": f"{(r.get('current_step') or 0) + 1}/{len(r['steps'])}",
                    "candidate": r["candidate"],
                    "baseline": r["baseline"],
                    "ended_at": (r.get("ended_at") or "")[:19].replace("T", " "),
                }
                for r in result
            ]
        )
    rollout = result
    lines = [
        f"Rollout {rollout['name']} on {rollout['endpoint_name']}: "
        f"{rollout['candidate']} against {rollout['baseline']}",
        f"Status: {position(rollout)}",
    ]
    if rollout.get("error"):
        lines.append(f"Error: ({rollout['error'].get('code')}) {rollout['error'].get('message')}")
    reading = rollout.get("reading") or {}
    if rollout["status"] not in FINAL and reading:
        gates = reading.get("gates") or []
        if gates:
            rows = [
                {
                    "gate": g["gate"],
                    "value": _number(g.get("value")),
                    "threshold": threshold_text(g),
                    "passed": passed_text(g),
                }
                for g in gates
            ]
            lines += ["", output.table(rows)]
        summary = "; ".join(
            p for p in (window_text(reading.get("window")), reading.get("reason")) if p
        )
        if summary:
            lines += ["", summary]
    decisions = [
        {
            "time": (d.get("time") or "")[:19].replace("T", " "),
            "step": d.get("step", 0) + 1,
            "event": d.get("event"),
            "verdict": d.get("verdict"),
            "reason": d.get("reason"),
            "gates": ", ".join(gate_text(g) for g in d.get("gates") or []),
        }
        for d in rollout["decisions"]
    ]
    if decisions:
        lines += ["", output.table(decisions)]
    return "\n".join(lines)


# ---- the parser ----------------------------------------------------------------------------
def add_parsers(endpoint_commands) -> None:
    """``rollout`` under ``online-endpoint``; ``-o table`` (the default here) is :func:`view`."""
    rollout = endpoint_commands.add_parser(
        "rollout", help="progressive rollouts of an endpoint's deployment"
    ).add_subparsers(dest="action", required=True)

    def subcommand(name: str, handler, text: str, named: bool = True):
        p = command(rollout, name, handler, text)
        p.set_defaults(output="table", view=view)
        if named:
            p.add_argument("-n", "--name", required=True)
        p.add_argument("-e", "--endpoint-name", required=True)
        return p

    p = command(rollout, "start", rollout_start, "Start a rollout from a YAML file.")
    p.set_defaults(output="table", view=view)
    p.add_argument("-f", "--file", required=True)
    p.add_argument("-n", "--name", help="the rollout's name [name in the file]")
    p.add_argument("-e", "--endpoint-name", help="the endpoint [endpoint_name in the file]")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument(
        "--wait",
        action="store_true",
        help="show its progress until it ends; exit 1 unless it Succeeded",
    )
    subcommand("show", rollout_show, "Show a rollout: its state, gates and decisions.")
    subcommand("list", rollout_list, "List an endpoint's rollouts, newest first.", named=False)
    for action, text in (
        ("pause", "Hold a rollout where it is; its traffic stays."),
        ("resume", "Resume a paused rollout; its step is judged again from now."),
        ("abort", "Give the baseline all the traffic back; the rollout ends RolledBack."),
    ):
        subcommand(action, rollout_action, text)
