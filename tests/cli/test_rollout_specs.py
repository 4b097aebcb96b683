"""Rollout YAML to the PUT body, refused before sending when malformed, and a rollout shown
and followed as a person reads it; without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cli import rollouts
from cli.errors import CliError
from cli.main import main
from cli.rollout_specs import rollout_body, rollout_entity
from cli.specs import Spec, load

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "online" / "rollout.yml"


def spec(data: dict) -> Spec:
    return Spec({"name": "green-1", "endpoint_name": "my-endpoint", **data}, None)


def test_the_example_maps_to_the_body_the_readme_sends():
    body = rollout_body(load(str(EXAMPLE)))
    assert body == {
        "properties": {
            "candidate": "green",
            "baseline": "blue",
            "gates": {
                "minAgreement": 0.99,
                "comparison": "exact",
                "maxErrorRate": 0.01,
                "errorStatusClasses": ["4xx", "5xx"],
                "maxP99Ms": 500,
                "maxP99Ratio": 1.5,
            },
            "steps": [
                {"mirror": 20, "durationSeconds": 60, "minRequests": 200},
                {"traffic": 10, "durationSeconds": 120, "minRequests": 100},
                {
                    "traffic": 50,
                    "baselineTraffic": 50,
                    "durationSeconds": 300,
                    "gates": {"maxErrorRate": 0.005},
                },
            ],
        }
    }


def test_options_name_the_rollout_and_its_endpoint_over_the_file():
    loaded = load(str(EXAMPLE), ["candidate=blue"], name="green-2", endpoint_name="other")
    assert (loaded["name"], loaded["endpoint_name"]) == ("green-2", "other")
    assert rollout_body(loaded)["properties"]["candidate"] == "blue"


def test_a_minimal_rollout_leaves_the_baseline_and_gates_to_the_server():
    body = rollout_body(
        spec({"candidate": "green", "steps": [{"traffic": 100, "min_requests": 1}]})
    )
    assert body == {
        "properties": {"candidate": "green", "steps": [{"traffic": 100, "minRequests": 1}]}
    }


STEP = {"traffic": 10, "duration_seconds": 5}


@pytest.mark.parametrize(
    "data, named",
    [
        ({"steps": [STEP]}, "'candidate' is required"),
        ({"candidate": "green"}, "'steps' is required"),
        ({"candidate": "green", "steps": []}, "'steps' is required"),
        ({"candidate": "green", "steps": [STEP], "canary": "x"}, "unknown key 'canary'"),
        (
            {"candidate": "green", "steps": [STEP], "gates": {"maxErrorRate": 0.1}},
            "unknown key 'gates.maxErrorRate'",
        ),
        (
            {"candidate": "green", "steps": [STEP, {**STEP, "weight": 5}]},
            "unknown key 'steps.1..weight'",
        ),
        (
            {"candidate": "green", "steps": [{**STEP, "gates": {"max_latency": 3}}]},
            "unknown key 'steps.0..gates.max_latency'",
        ),
        ({"candidate": "green", "steps": [{**STEP, "mirror": 10}]}, "'steps.0.' gives"),
        ({"candidate": "green", "steps": [{"duration_seconds": 5}]}, "'steps.0.' gives"),
        ({"candidate": "green", "steps": [{"traffic": 10}]}, "needs 'duration_seconds'"),
        (
            {"candidate": "green", "steps": [{"traffic": "10%", "duration_seconds": 5}]},
            "'steps.0..traffic' must be a number",
        ),
        (
            {"candidate": "green", "steps": [STEP], "gates": {"error_status_classes": "5xx"}},
            "'gates.error_status_classes' is a list",
        ),
        ({"candidate": ["green"], "steps": [STEP]}, "'candidate' names a deployment"),
        ({"candidate": "green", "steps": [STEP], "endpoint_name": None}, "'endpoint_name'"),
    ],
)
def test_bad_yaml_is_refused_naming_the_field(data, named):
    with pytest.raises(CliError, match=named):
        rollout_body(spec(data))


def test_bad_yaml_is_refused_before_anything_is_sent(tmp_path, capsys, monkeypatch):
    # No server configured: a request would fail differently.
    monkeypatch.setenv("WEIR_CLI_CONFIG", str(tmp_path / "none"))
    for variable in ("WEIR_URL", "WEIR_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    bad = tmp_path / "rollout.yml"
    bad.write_text(yaml.safe_dump({"name": "r", "steps": [STEP]}))
    with pytest.raises(SystemExit) as exited:
        main(["online-endpoint", "rollout", "start", "-f", str(bad), "-e", "my-endpoint"])
    assert exited.value.code == 1
    assert capsys.readouterr().err == (
        f"ERROR: 'candidate' is required in {bad} (the deployment to roll out)\n"
    )


def resource(status: str, phase: str, step: int, decisions: list, reading=None) -> dict:
    return {
        "id": "/subscriptions/s/.../onlineEndpoints/my-endpoint/rollouts/green-1",
        "name": "green-1",
        "properties": {
            "candidate": "green",
            "baseline": "blue",
            "gates": {"maxErrorRate": 0.01, "errorStatusClasses": ["5xx"]},
            "steps": [
                {"mirror": 20, "baselineTraffic": 100, "durationSeconds": 2, "minRequests": 0},
                {"traffic": 50, "baselineTraffic": 50, "durationSeconds": 2, "minRequests": 5},
            ],
            "status": status,
            "phase": phase,
            "currentStep": step,
            "stepStartedAt": "2024-05-01T12:00:01+00:00",
            "reading": reading,
            "decisions": decisions,
            "error": None,
            "endedAt": None,
        },
    }


GATE = {"gate": "maxErrorRate", "value": 0.2, "threshold": 0.01, "passed": False}
WINDOW = {"seconds": 1.5, "requests": 10, "errors": 2, "errorStatusClasses": ["5xx"]}
STARTED = {"time": "2024-05-01T12:00:00+00:00", "step": 0, "event": "Started", "verdict": None}
FAILED = {
    "time": "2024-05-01T12:00:05+00:00",
    "step": 1,
    "event": "StepFailed",
    "verdict": "Fail",
    "reason": "maxErrorRate failed with 10 in the window",
    "window": WINDOW,
    "gates": [GATE],
}
ROLLED_BACK = {
    "time": "2024-05-01T12:00:06+00:00",
    "step": 1,
    "event": "RolledBack",
    "verdict": None,
    "reason": "blue takes all the traffic",
    "window": {**WINDOW, "requests": 12, "errors": 3},
}


def test_a_rollout_is_shown_in_snake_case_with_gates_as_the_yaml_names_them():
    reading = {
        "verdict": "Wait",
        "reason": "waiting: 1.5 of 2 s",
        "window": WINDOW,
        "gates": [GATE],
    }
    shown = rollout_entity(resource("Running", "Observing", 1, [STARTED], reading), "my-endpoint")
    assert shown["steps"][1] == {
        "traffic": 50,
        "baseline_traffic": 50,
        "duration_seconds": 2,
        "min_requests": 5,
    }
    assert shown["gates"] == {"max_error_rate": 0.01, "error_status_classes": ["5xx"]}
    assert shown["reading"]["gates"][0]["gate"] == "max_error_rate"
    assert shown["reading"]["window"]["error_status_classes"] == ["5xx"]

    text = rollouts.view(shown)
    assert "Status: Running, step 2/2 Observing (traffic 50%, baseline 50%)" in text
    assert "max_error_rate  0.2    <= 0.01    FAIL" in text
    assert "10 requests, 2 errors in 1.5 s; waiting: 1.5 of 2 s" in text
    assert "2024-05-01 12:00:00  1     Started" in text
    listed = rollouts.view([shown])
    assert listed.splitlines()[2].split() == [
        "green-1",
        "Running",
        "Observing",
        "2/2",
        "green",
        "blue",
    ]


def test_waiting_prints_each_decision_once_and_ends_with_the_final_state(monkeypatch, capsys):
    answers = iter(
        [
            resource("Running", "Observing", 1, [STARTED]),
            resource("Running", "RollingBack", 1, [STARTED, FAILED]),
            resource("RolledBack", "RollingBack", 1, [STARTED, FAILED, ROLLED_BACK]),
        ]
    )

    class Client:
        def get(self, path):
            return next(answers)

    monkeypatch.setattr(rollouts.time, "sleep", lambda seconds: None)
    first = rollout_entity(resource("Pending", "Applying", 0, []), "my-endpoint")
    ended = rollouts.watch(Client(), "path", first)
    assert ended["status"] == "RolledBack"
    err = capsys.readouterr().err
    assert err.count("StepFailed") == 1 and err.count("Started") == 1
    assert (
        "12:00:05 step 2/2 StepFailed Fail: maxErrorRate failed with 10 in the window "
        "[max_error_rate 0.2 <= 0.01 FAIL]"
    ) in err
    assert "RolledBack: blue takes all the traffic (the candidate: 12 requests, 3 errors" in err
    assert "Rollout green-1: Running, step 2/2 Observing" in err
    assert "Rollout green-1: Running, step 2/2 RollingBack (blue to 100%)" in err
    assert rollouts.why(ended) == "maxErrorRate failed with 10 in the window"
    assert json.dumps(ended)  # -o json prints it as it is
