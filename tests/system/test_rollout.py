"""Progressive rollouts on the real stack, with a client scoring all the while: a candidate
that agrees and is healthy is promoted through every step with no failed request; one that
answers differently never gets live traffic, and one that differs only outside the compared
JSONPath is promoted; one that starts failing is rolled back within its step, its errors
counted in the decision; a rollout whose worker is killed goes on from the step it had
reached; and the ``weir`` CLI starts one from YAML and follows it to its end, and pauses,
resumes and aborts another."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
import yaml

from tests.system.conftest import cli_runner
from tests.system.test_router import eventually

pytestmark = pytest.mark.system

SAME = b"def init():\n    pass\n\ndef run(raw):\n    return {'label': 1}\n"
DIFFER = b"def init():\n    pass\n\ndef run(raw):\n    return {'label': 2}\n"
# The same label, and a field of its own: agrees only when the comparison's path is $.label.
RELABEL = b"def init():\n    pass\n\ndef run(raw):\n    return {'label': 1, 'version': 2}\n"
# Healthy for 40 requests, then every request raises (answered 424 by the router).
FLAKY = (
    b"n = 0\ndef init():\n    pass\n\ndef run(raw):\n    global n\n    n += 1\n"
    b"    if n > 40:\n        raise RuntimeError('broken')\n    return {'label': 1}\n"
)
FINAL = ("Succeeded", "RolledBack", "Failed")


@pytest.fixture(scope="module")
def rollout_endpoint(stack):
    """Endpoint "rollout-ep": blue (all the traffic) and the candidates same (answers as blue does),
    differ, relabel (differs outside $.label) and flaky."""
    workspace = stack.ws(f"ro-{uuid.uuid4().hex[:8]}")
    response = stack.call("PUT", workspace, {"location": "local"})
    assert response.status_code == 201, response.text
    runtime = stack.register_runtime(workspace)
    path = f"{workspace}/onlineEndpoints/rollout-ep"
    created = stack.call("PUT", path, {"location": "local", "properties": {"authMode": "Key"}})
    assert created.status_code == 201, created.text
    stack.wait_for_status(created.headers["Azure-AsyncOperation"])
    deploying = []
    for name, script in (
        ("blue", SAME),
        ("same", SAME),
        ("differ", DIFFER),
        ("relabel", RELABEL),
        ("flaky", FLAKY),
    ):
        code_uri = stack.upload(workspace, {"score.py": script}, "codes")
        code = {"properties": {"codeUri": code_uri}}
        assert stack.call("PUT", f"{workspace}/codes/{name}/versions/1", code).status_code == 201
        body = {
            "location": "local",
            "sku": {"name": "Default", "capacity": 1},
            "properties": {
                "endpointComputeType": "Managed",
                **runtime,
                "codeConfiguration": {"codeId": f"azureml:{name}:1", "scoringScript": "score.py"},
            },
        }
        deploying.append(stack.call("PUT", f"{path}/deployments/{name}", body))
    for response in deploying:
        status = stack.wait_for_status(response.headers["Azure-AsyncOperation"], 180)
        assert status["status"] == "Succeeded", status
    set_traffic(stack, path, {"blue": 100})
    return path


def set_traffic(stack, path: str, traffic: dict) -> None:
    body = {"location": "local", "properties": {"authMode": "Key", "traffic": traffic}}
    response = stack.call("PUT", path, body)
    assert stack.wait_for_status(response.headers["Azure-AsyncOperation"])["status"] == "Succeeded"


class Client(threading.Thread):
    """Scores the endpoint continuously, keeping every answer's status and deployment."""

    def __init__(self, stack, path: str):
        super().__init__(daemon=True)
        endpoint = stack.call("GET", path).json()["properties"]
        key = stack.call("POST", f"{path}/listKeys").json()["primaryKey"]
        self.url = f"{stack.router_url}/score"
        self.headers = {
            "Host": urlsplit(endpoint["scoringUri"]).netloc,
            "Authorization": f"Bearer {key}",
        }
        self.answers: list[tuple[float, int, str]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        session = requests.Session()
        while not self.stopped.is_set():
            try:
                r = session.post(self.url, data="{}", headers=self.headers, timeout=10)
                self.answers.append(
                    (time.time(), r.status_code, r.headers.get("azureml-model-deployment", ""))
                )
            except requests.RequestException:
                self.answers.append((time.time(), 0, ""))
            time.sleep(0.005)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=15)

    def failures(self) -> list:
        return [a for a in self.answers if a[1] != 200]


@contextlib.contextmanager
def scoring_throughout(stack, path: str):
    """A Client scoring the endpoint for the length of the block."""
    client = Client(stack, path)
    client.start()
    try:
        yield client
    finally:
        client.stop()


def start(stack, path: str, name: str, **properties):
    response = stack.call("PUT", f"{path}/rollouts/{name}", {"properties": properties})
    assert response.status_code == 201, response.text
    return f"{path}/rollouts/{name}"


def wait_for_end(stack, rollout: str, timeout: float = 60) -> dict:
    def ended():
        body = stack.call("GET", rollout).json()
        return body if body["properties"]["status"] in FINAL else None

    body = eventually(ended, timeout)
    assert body, stack.call("GET", rollout).json()
    return body["properties"]


def traffic(stack, path: str) -> tuple[dict, dict]:
    props = stack.call("GET", path).json()["properties"]
    live = {k: v for k, v in props["traffic"].items() if v}
    return live, {k: v for k, v in props.get("mirrorTraffic", {}).items() if v}


def test_a_candidate_whose_answers_differ_never_gets_live_traffic(stack, rollout_endpoint):
    with scoring_throughout(stack, rollout_endpoint) as client:
        rollout = start(
            stack,
            rollout_endpoint,
            "differ-1",
            candidate="differ",
            gates={"minAgreement": 0.9},
            steps=[
                {"mirror": 50, "durationSeconds": 3, "minRequests": 10},
                {"traffic": 50, "durationSeconds": 3},
            ],
        )
        props = wait_for_end(stack, rollout)
    assert props["status"] == "RolledBack", props
    failed = next(d for d in props["decisions"] if d["event"] == "StepFailed")
    assert failed["step"] == 0 and failed["verdict"] == "Fail"
    (gate,) = failed["gates"]
    assert gate["gate"] == "minAgreement" and gate["value"] == 0 and gate["passed"] is False
    assert failed["window"]["mirrored"] >= 10
    assert traffic(stack, rollout_endpoint) == ({"blue": 100}, {})
    assert not any(deployment == "differ" for _, _, deployment in client.answers)
    assert client.failures() == []


def test_a_candidate_differing_only_outside_the_compared_path_is_promoted(stack, rollout_endpoint):
    with scoring_throughout(stack, rollout_endpoint) as client:
        rollout = start(
            stack,
            rollout_endpoint,
            "relabel-1",
            candidate="relabel",
            gates={"minAgreement": 0.9, "comparison": {"rule": "path", "path": "$.label"}},
            steps=[{"mirror": 50, "durationSeconds": 2, "minRequests": 10}],
        )
        props = wait_for_end(stack, rollout)
        time.sleep(1)
    assert props["status"] == "Succeeded", props
    passed = next(d for d in props["decisions"] if d["event"] == "StepPassed")
    (gate,) = passed["gates"]
    assert gate["value"] == 1 and gate["comparison"]["path"] == "$.label"
    assert traffic(stack, rollout_endpoint) == ({"relabel": 100}, {})
    assert client.failures() == []
    # The rule stays the endpoint's; the next tests start from blue again.
    comparison = stack.call("GET", rollout_endpoint).json()["properties"]["mirrorComparison"]
    assert comparison == {"tolerance": 1e-6, "path": "$.label"}
    set_traffic(stack, rollout_endpoint, {"blue": 100})


def test_a_candidate_that_starts_failing_is_rolled_back_within_its_step(stack, rollout_endpoint):
    with scoring_throughout(stack, rollout_endpoint) as client:
        rollout = start(
            stack,
            rollout_endpoint,
            "flaky-1",
            candidate="flaky",
            gates={"maxErrorRate": 0.05, "errorStatusClasses": ["4xx", "5xx"]},
            steps=[{"traffic": 50, "durationSeconds": 30, "minRequests": 20}],
        )
        props = wait_for_end(stack, rollout)
        time.sleep(1)  # each router process takes the new split on its own notification
    assert props["status"] == "RolledBack", props
    failed = next(d for d in props["decisions"] if d["event"] == "StepFailed")
    started = next(d for d in props["decisions"] if d["event"] == "StepStarted")
    assert failed["window"]["errors"] >= 1
    assert failed["window"]["seconds"] < 30  # judged before the step's duration ran out
    errors = client.failures()
    assert errors and all(status == 424 for _, status, _ in errors)
    first_error = errors[0][0]
    rolled_back = next(d for d in props["decisions"] if d["event"] == "RolledBack")
    took = time.mktime(time.strptime(rolled_back["time"][:19], "%Y-%m-%dT%H:%M:%S")) - time.mktime(
        time.strptime(started["time"][:19], "%Y-%m-%dT%H:%M:%S")
    )
    print(
        f"\nflaky: {len(errors)} client-visible errors of {len(client.answers)} requests; "
        f"the decision counted {failed['window']['errors']} in {failed['window']['seconds']} s, "
        f"{rolled_back['window']['errors']} until the baseline had the traffic back; "
        f"rolled back {took:.0f} s after the step began"
    )
    # What clients saw is what the rollback's decision counted (the routers' last reports
    # may still come in after it, as each router process takes the new split on its own).
    assert rolled_back["window"]["errors"] >= failed["window"]["errors"]
    assert len(errors) <= rolled_back["window"]["errors"] + 100
    assert errors[-1][0] - first_error < 15
    assert traffic(stack, rollout_endpoint) == ({"blue": 100}, {})


def test_an_agreeing_healthy_candidate_is_promoted_with_no_failed_request(stack, rollout_endpoint):
    with scoring_throughout(stack, rollout_endpoint) as client:
        rollout = start(
            stack,
            rollout_endpoint,
            "same-1",
            candidate="same",
            gates={
                "minAgreement": 0.95,
                "maxErrorRate": 0.01,
                "errorStatusClasses": ["4xx", "5xx"],
                "maxP99Ms": 2000,
            },
            steps=[
                {"mirror": 30, "durationSeconds": 2, "minRequests": 10},
                {"traffic": 20, "durationSeconds": 2, "minRequests": 10},
                {"traffic": 60, "durationSeconds": 2, "minRequests": 10},
            ],
        )
        props = wait_for_end(stack, rollout)
        time.sleep(1)
    assert props["status"] == "Succeeded", props
    events = [(d["event"], d["step"]) for d in props["decisions"]]
    for index in range(3):
        assert ("StepStarted", index) in events and ("StepPassed", index) in events
    assert events[-1] == ("Promoted", 2)
    assert traffic(stack, rollout_endpoint) == ({"same": 100}, {})
    assert client.failures() == []
    served = {deployment for _, _, deployment in client.answers}
    assert {"blue", "same"} <= served


def test_a_rollout_goes_on_from_its_step_after_its_worker_is_killed(stack, rollout_endpoint):
    # "same" holds all the traffic now; blue answers as it does.
    with scoring_throughout(stack, rollout_endpoint) as client:
        rollout = start(
            stack,
            rollout_endpoint,
            "back-to-blue",
            candidate="blue",
            gates={"maxErrorRate": 0.01},
            steps=[
                {"traffic": 30, "durationSeconds": 2, "minRequests": 5},
                {"traffic": 60, "durationSeconds": 12, "minRequests": 5},
            ],
        )

        def on_second_step():
            props = stack.call("GET", rollout).json()["properties"]
            return props["currentStep"] == 1 and props["phase"] == "Observing"

        assert eventually(on_second_step, 30)
        stack.stop_worker(signal.SIGKILL)
        killed_at = time.time()
        time.sleep(2)
        assert stack.call("GET", rollout).json()["properties"]["status"] == "Running"
        stack.start_worker()
        props = wait_for_end(stack, rollout, 60)
    assert props["status"] == "Succeeded", props
    events = [(d["event"], d["step"]) for d in props["decisions"]]
    # Step 1 was not started again: its window ran on from before the kill.
    assert events.count(("StepStarted", 0)) == 1 and events.count(("StepStarted", 1)) == 1
    passed = next(d for d in props["decisions"] if d["event"] == "StepPassed" and d["step"] == 1)
    assert passed["window"]["seconds"] >= 12
    print(f"\nresumed: ended {time.time() - killed_at:.1f} s after the worker was killed")
    assert traffic(stack, rollout_endpoint) == ({"blue": 100}, {})
    assert client.failures() == []


def test_the_cli_follows_a_rollout_to_its_end_and_pauses_resumes_and_aborts_another(
    stack, rollout_endpoint, tmp_path
):
    workspace = rollout_endpoint.split("/workspaces/", 1)[1].split("/", 1)[0]
    weir = cli_runner(stack, tmp_path, tmp_path)
    scope = ("-w", workspace, "-e", "rollout-ep")
    # blue and "same" answer alike: the one without the traffic now is the candidate.
    (baseline,) = traffic(stack, rollout_endpoint)[0]
    candidate = "same" if baseline == "blue" else "blue"
    (tmp_path / "rollout.yml").write_text(
        yaml.safe_dump(
            {
                "name": "cli-1",
                "candidate": candidate,
                "gates": {"max_error_rate": 0.01, "error_status_classes": ["4xx", "5xx"]},
                "steps": [{"traffic": 50, "duration_seconds": 2, "min_requests": 5}],
            }
        )
    )
    with scoring_throughout(stack, rollout_endpoint) as client:
        started = time.monotonic()
        done = weir("online-endpoint", "rollout", "start", "-f", "rollout.yml", *scope, "--wait")
        took = time.monotonic() - started
        shown = weir.json("online-endpoint", "rollout", "show", "-n", "cli-1", *scope, "-o", "json")

        # Another, back to the baseline, held and let go, then aborted.
        (tmp_path / "back.yml").write_text(
            yaml.safe_dump(
                {
                    "candidate": baseline,
                    "steps": [{"traffic": 50, "duration_seconds": 60, "min_requests": 5}],
                }
            )
        )
        json_out = ("-o", "json", "--query", "status")
        assert weir.json(
            "online-endpoint",
            "rollout",
            "start",
            "-f",
            "back.yml",
            "-n",
            "cli-2",
            *scope,
            *json_out,
        ) in ("Pending", "Running")
        rollout = f"{rollout_endpoint}/rollouts/cli-2"
        assert eventually(
            lambda: stack.call("GET", rollout).json()["properties"]["phase"] == "Observing", 20
        )
        action = ("-n", "cli-2", *scope, *json_out)
        assert weir.json("online-endpoint", "rollout", "pause", *action) == "Paused"
        assert weir.json("online-endpoint", "rollout", "resume", *action) == "Running"
        weir("online-endpoint", "rollout", "abort", *action)
        aborted = wait_for_end(stack, rollout, 30)
        refused = weir("online-endpoint", "rollout", "pause", "-n", "cli-2", *scope, check=False)
    print(f"\ncli: start --wait took {took:.1f} s\n{done.stderr}{done.stdout}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Rollout cli-1 on rollout-ep: {candidate} against {baseline}")
    assert "Status: Succeeded" in done.stdout
    # Each decision once, as it appeared, the step's gate against its threshold.
    assert done.stderr.count("StepStarted") == 1
    assert (
        "step 1/1 StepPassed Pass" in done.stderr and "max_error_rate 0 <= 0.01 ok" in done.stderr
    )
    assert "Rollout cli-1: Running, step 1/1 Observing (traffic 50%, baseline 50%)" in done.stderr
    assert done.stderr.rstrip().endswith("s)") and "Rollout cli-1: Succeeded (" in done.stderr
    assert shown["status"] == "Succeeded" and shown["candidate"] == candidate
    assert [d["event"] for d in shown["decisions"]][-2:] == ["StepPassed", "Promoted"]
    assert aborted["status"] == "RolledBack"
    events = [d["event"] for d in aborted["decisions"]]
    order = [events.index(e) for e in ("Paused", "Resumed", "Aborted", "RolledBack")]
    assert order == sorted(order) and events[-1] == "RolledBack"
    assert refused.returncode == 1
    assert refused.stderr.startswith("ERROR: (Conflict) Rollout 'cli-2' is RolledBack")
    assert traffic(stack, rollout_endpoint) == ({candidate: 100}, {})
    assert client.failures() == []
