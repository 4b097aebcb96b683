"""Rollouts in process: a bad spec is a 400 naming its field and creates nothing; one rollout
runs per endpoint; the controller's ticks set traffic through the endpoint's own update,
pause, resume and abort; its gates judged on crafted totals and on metrics rows in Postgres
and reports still in Redis."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest

from contracts.metrics import LATENCY, LATENCY_BUCKETS, REQUESTS, metrics_key, minute_of
from controlplane.audit.models import AuditRecord
from controlplane.core.models import OnlineDeployment, OnlineEndpoint
from controlplane.metrics.aggregates import Totals
from controlplane.metrics.models import DeploymentMinute
from controlplane.rollout import controller, gates
from controlplane.rollout.models import Rollout
from tests.conftest import assert_arm_error, run_operations, url

ROLLOUTS = "/onlineEndpoints/ep1/rollouts"
PLAN = {
    "candidate": "green",
    "gates": {"minAgreement": 0.95, "maxErrorRate": 0.05, "maxP99Ratio": 2},
    "steps": [
        {"mirror": 20, "durationSeconds": 1, "minRequests": 10},
        {"traffic": 10, "durationSeconds": 1, "minRequests": 10},
    ],
}


@pytest.fixture
def endpoint(client):
    assert client.put(url(""), {"location": "local"}, format="json").status_code == 201
    body = {"location": "local", "properties": {"authMode": "Key"}}
    assert client.put(url("/onlineEndpoints/ep1"), body, format="json").status_code == 201
    endpoint = OnlineEndpoint.objects.get(name="ep1")
    for name in ("blue", "green", "red"):
        OnlineDeployment.objects.create(
            endpoint=endpoint,
            name=name,
            location="local",
            endpoint_compute_type="Managed",
            provisioning_state="Succeeded",
        )
    run_operations()
    set_traffic(client, {"blue": 100})
    return endpoint


def set_traffic(client, traffic: dict) -> None:
    body = {"location": "local", "properties": {"authMode": "Key", "traffic": traffic}}
    response = client.put(url("/onlineEndpoints/ep1"), body, format="json")
    assert response.status_code in (200, 201), response.content
    run_operations()


def put(client, name="r1", **properties):
    return client.put(
        url(f"{ROLLOUTS}/{name}"), {"properties": {**PLAN, **properties}}, format="json"
    )


def step(**fields):
    return {"traffic": 10, "durationSeconds": 1, **fields}


#
# The resource
#
@pytest.mark.parametrize(
    ("properties", "target"),
    [
        ({"candidate": "purple"}, "properties.candidate"),
        ({"candidate": "blue"}, "properties.candidate"),
        ({"candidate": None}, "properties.candidate"),
        ({"baseline": "purple"}, "properties.baseline"),
        ({"baseline": "red"}, "properties.baseline"),  # holds no traffic now
        ({"steps": []}, "properties.steps"),
        ({"steps": "fast"}, "properties.steps"),
        ({"steps": [step(), step(traffic=120)]}, "properties.steps[1].traffic"),
        ({"steps": [step(baselineTraffic=80)]}, "properties.steps[0].baselineTraffic"),
        ({"steps": [{"mirror": 60, "durationSeconds": 1}]}, "properties.steps[0].mirror"),
        ({"steps": [{"mirror": 10, "traffic": 10, "minRequests": 1}]}, "properties.steps[0]"),
        ({"steps": [{"traffic": 10}]}, "properties.steps[0].durationSeconds"),
        ({"steps": [step(durationSeconds=-1)]}, "properties.steps[0].durationSeconds"),
        ({"steps": [step(speed=3)]}, "properties.steps[0].speed"),
        ({"steps": [step(gates={"maxErrorRate": 5})]}, "properties.steps[0].gates.maxErrorRate"),
        ({"gates": {"minAgreement": 1.5}}, "properties.gates.minAgreement"),
        ({"gates": {"minAgreement": "high"}}, "properties.gates.minAgreement"),
        ({"gates": {"maxErrorRate": -0.1}}, "properties.gates.maxErrorRate"),
        ({"gates": {"comparison": "tolerant"}}, "properties.gates.comparison"),
        ({"gates": {"comparison": {"rule": "close"}}}, "properties.gates.comparison.rule"),
        ({"gates": {"comparison": {"rule": "tolerance"}}}, "properties.gates.comparison.tolerance"),
        (
            {"gates": {"comparison": {"rule": "tolerance", "tolerance": -1}}},
            "properties.gates.comparison.tolerance",
        ),
        (
            {"gates": {"comparison": {"rule": "tolerance", "tolerance": "1%"}}},
            "properties.gates.comparison.tolerance",
        ),
        (
            {"gates": {"comparison": {"rule": "tolerance", "tolerance": 0.1, "path": "$"}}},
            "properties.gates.comparison.path",
        ),
        (
            {"gates": {"comparison": {"rule": "path", "path": "predictions"}}},
            "properties.gates.comparison.path",
        ),
        ({"gates": {"comparison": {"rule": "path"}}}, "properties.gates.comparison.path"),
        (
            {
                "steps": [
                    {
                        "mirror": 10,
                        "minRequests": 1,
                        "gates": {"comparison": {"rule": "path", "path": "$[1:]"}},
                    }
                ]
            },
            "properties.steps[0].gates.comparison.path",
        ),
        ({"gates": {"errorStatusClasses": ["2xx"]}}, "properties.gates.errorStatusClasses"),
        ({"gates": {"maxP99Ratio": 0}}, "properties.gates.maxP99Ratio"),
        ({"color": "blue"}, "properties.color"),
    ],
)
def test_a_bad_spec_is_400_naming_the_field_and_creates_nothing(
    client, endpoint, properties, target
):
    assert_arm_error(put(client, **properties), 400, "ValidationError", target)
    assert not Rollout.objects.exists()
    assert OnlineEndpoint.objects.get().traffic == {"blue": 100}


def test_a_rollout_is_created_pending_and_read_back(client, endpoint):
    response = put(client)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].endswith("/onlineEndpoints/ep1/rollouts/r1")
    assert body["type"] == "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/rollouts"
    props = body["properties"]
    assert (props["candidate"], props["baseline"], props["status"]) == ("green", "blue", "Pending")
    assert props["gates"]["comparison"] == "exact"
    assert props["gates"]["errorStatusClasses"] == ["5xx"]
    assert props["steps"][1] == {
        "traffic": 10,
        "baselineTraffic": 90,
        "durationSeconds": 1,
        "minRequests": 10,
    }
    assert client.get(url(f"{ROLLOUTS}/R1")).json()["properties"]["status"] == "Pending"
    listed = client.get(url(ROLLOUTS)).json()["value"]
    assert [r["name"] for r in listed] == ["r1"]


@pytest.mark.parametrize(
    ("comparison", "stored", "on_endpoint"),
    [
        ({"rule": "exact"}, "exact", None),
        (
            {"rule": "tolerance", "tolerance": 0.01},
            {"rule": "tolerance", "tolerance": 0.01},
            {"tolerance": 0.01, "path": None},
        ),
        (
            {"rule": "path", "path": "$.predictions"},
            {"rule": "path", "path": "$.predictions", "tolerance": 1e-6},
            {"tolerance": 1e-6, "path": "$.predictions"},
        ),
    ],
)
def test_a_mirror_steps_comparison_is_set_on_the_endpoint_with_its_mirror_traffic(
    client, endpoint, comparison, stored, on_endpoint
):
    endpoint.mirror_comparison = {"tolerance": 0.5, "path": None}  # set by hand before
    endpoint.save(update_fields=["mirror_comparison"])
    gates = {**PLAN["gates"], "comparison": comparison}
    response = put(client, gates=gates)
    assert response.status_code == 201, response.content
    assert response.json()["properties"]["gates"]["comparison"] == stored
    tick()
    endpoint.refresh_from_db()
    # One update carries both: the router gets them in one publication.
    assert endpoint.mirror_traffic == {"green": 20}
    assert endpoint.mirror_comparison == on_endpoint
    assert state().operation is not None
    run_operations()
    endpoint.refresh_from_db()
    assert endpoint.applied_mirror_comparison == on_endpoint


def test_one_rollout_runs_per_endpoint_and_a_running_one_is_not_replaced(client, endpoint):
    assert put(client).status_code == 201
    assert_arm_error(put(client, name="r2", candidate="red"), 409, "Conflict")
    assert_arm_error(put(client), 409, "Conflict")
    assert_arm_error(client.delete(url(f"{ROLLOUTS}/r1")), 409, "Conflict")
    assert Rollout.objects.count() == 1


#
# The controller's ticks
#
def tick(name="r1"):
    rollout = Rollout.objects.get(name=name)
    return controller.tick(rollout.pk, rollout.runner)


def state(name="r1") -> Rollout:
    return Rollout.objects.get(name=name)


def test_ticks_move_traffic_through_the_endpoint_and_abort_rolls_it_back(client, endpoint):
    put(client)
    assert tick() is not None  # Pending -> Running, step 0's traffic asked for
    rollout = state()
    assert (rollout.status, rollout.phase) == ("Running", "Applying")
    assert rollout.operation is not None  # the endpoint's own update operation
    run_operations()
    tick()
    endpoint.refresh_from_db()
    assert endpoint.mirror_traffic == {"green": 20}
    assert endpoint.traffic == {"blue": 100, "green": 0}
    assert state().phase == "Observing"
    assert [d["event"] for d in state().decisions] == ["Started", "StepStarted"]
    # The traffic change is in the audit log as the endpoint's write, by the rollout.
    record = AuditRecord.objects.filter(principal_name="weir-rollout").get()
    assert record.action == "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write"
    assert record.resource_id == endpoint.arm_id
    assert record.outcome == "Accepted"
    assert record.changes["properties.mirrorTraffic.green"] == {"before": None, "after": 20}
    assert record.details["startedBy"] == "alice"
    assert record.details["rollout"].endswith("/onlineEndpoints/ep1/rollouts/r1")

    # A run that lost the rollout (another was given it) does nothing.
    assert controller.tick(state().pk, uuid.uuid4()) is None

    paused = client.post(url(f"{ROLLOUTS}/r1/pause"))
    assert paused.status_code == 200 and paused.json()["properties"]["status"] == "Paused"
    assert tick() is None  # a paused rollout's run stops
    old_runner = state().runner
    resumed = client.post(url(f"{ROLLOUTS}/r1/resume")).json()
    assert resumed["properties"]["status"] == "Running"
    assert state().runner != old_runner  # a new run owns it
    assert controller.tick(state().pk, old_runner) is None

    aborted = client.post(url(f"{ROLLOUTS}/r1/abort"))
    assert aborted.json()["properties"]["abortRequestedBy"] == "alice"
    tick()
    assert state().phase == "RollingBack"
    run_operations()
    assert tick() is None
    rollout = state()
    assert rollout.status == "RolledBack" and rollout.ended_at is not None
    endpoint.refresh_from_db()
    assert endpoint.traffic.get("blue") == 100 and not endpoint.traffic.get("green")
    assert endpoint.mirror_traffic == {}
    events = [d["event"] for d in rollout.decisions]
    assert events[-2:] == ["Aborted", "RolledBack"]
    assert "Paused" in events and "Resumed" in events
    assert_arm_error(client.post(url(f"{ROLLOUTS}/r1/resume")), 409, "Conflict", "status")
    # An ended rollout may be replaced (200: the name is taken again), or deleted.
    assert put(client).status_code == 200
    client.post(url(f"{ROLLOUTS}/r1/abort"))
    tick()
    assert state().status == "RolledBack"  # no traffic had moved: nothing to change
    assert client.delete(url(f"{ROLLOUTS}/r1")).status_code == 200
    assert client.get(url(f"{ROLLOUTS}/r1")).status_code == 404


def test_the_reconciler_gives_a_lapsed_rollout_a_new_run_once(client, endpoint, settings):
    from workers.tasks.rollout import reconcile_rollouts

    put(client)
    first = state().runner
    Rollout.objects.update(lease_expires_at=datetime(2000, 1, 1, tzinfo=UTC))
    assert reconcile_rollouts() == 1
    assert reconcile_rollouts() == 0  # the new lease has not lapsed
    assert state().runner != first and state().attempts == 2


#
# Judging a step
#
def totals(ok=0, errors=0, model_errors=0, fast=0, slow=0, mirrored=0, agreed=0) -> Totals:
    t = Totals()
    t.requests["2xx"], t.requests["5xx"], t.requests["4xx"] = ok, errors, model_errors
    t.latency_buckets[LATENCY_BUCKETS.index(0.01)] = fast
    t.latency_buckets[LATENCY_BUCKETS.index(0.5)] = slow
    if hasattr(t, "mirrored"):
        t.mirrored, t.mirror_agreed = mirrored, agreed
    return t


TRAFFIC = {"traffic": 10, "baselineTraffic": 90, "durationSeconds": 5, "minRequests": 20}
GATES = {"maxErrorRate": 0.05, "errorStatusClasses": ["5xx"], "maxP99Ratio": 2, "maxP99Ms": 800}


def test_a_traffic_step_waits_for_its_requests_and_its_duration_then_passes():
    healthy, base = totals(ok=30, fast=30), totals(ok=300, fast=300)
    assert gates.judge(TRAFFIC, GATES, totals(ok=5, fast=5), base, 10)["verdict"] == "Wait"
    assert gates.judge(TRAFFIC, GATES, healthy, base, 2)["verdict"] == "Wait"
    judged = gates.judge(TRAFFIC, GATES, healthy, base, 6)
    assert judged["verdict"] == "Pass"
    assert judged["window"]["requests"] == 30 and judged["window"]["baselineRequests"] == 300
    by_gate = {g["gate"]: g for g in judged["gates"]}
    assert by_gate["maxErrorRate"] == {
        "gate": "maxErrorRate",
        "value": 0.0,
        "threshold": 0.05,
        "passed": True,
    }
    assert by_gate["maxP99Ratio"]["baselineP99Ms"] == pytest.approx(9.94, abs=0.01)


def test_a_failing_gate_fails_the_step_as_soon_as_the_sample_is_large_enough():
    base = totals(ok=300, fast=300)
    failing = totals(ok=18, errors=3, fast=21)
    judged = gates.judge(TRAFFIC, GATES, failing, base, 1)  # before the duration
    assert judged["verdict"] == "Fail"
    assert judged["window"]["errors"] == 3
    assert [g["gate"] for g in judged["gates"] if g["passed"] is False] == ["maxErrorRate"]
    # Model errors are 424s: counted only when the gate names 4xx.
    crashing = totals(ok=18, model_errors=3, fast=21)
    assert gates.judge(TRAFFIC, GATES, crashing, base, 6)["verdict"] == "Pass"
    with_4xx = {**GATES, "errorStatusClasses": ["4xx", "5xx"]}
    assert gates.judge(TRAFFIC, with_4xx, crashing, base, 6)["verdict"] == "Fail"
    # Slow against the baseline: p99 over twice the baseline's.
    slow = totals(ok=30, fast=20, slow=10)
    judged = gates.judge(TRAFFIC, {"maxP99Ratio": 2}, slow, base, 6)
    assert judged["verdict"] == "Fail" and judged["gates"][0]["value"] > 100


def test_a_mirror_step_is_judged_on_agreement():
    if not hasattr(Totals(), "mirrored"):
        pytest.skip("the routers do not count mirrored requests yet")
    mirror = {"mirror": 20, "baselineTraffic": 100, "durationSeconds": 1, "minRequests": 10}
    rule = {"minAgreement": 0.9, "comparison": "exact"}
    agreeing = totals(mirrored=20, agreed=20)
    assert gates.judge(mirror, rule, agreeing, Totals(), 2)["verdict"] == "Pass"
    differing = gates.judge(mirror, rule, totals(mirrored=20, agreed=3), Totals(), 0.5)
    assert differing["verdict"] == "Fail"
    assert differing["gates"][0]["value"] == 0.15
    assert gates.judge(mirror, rule, totals(mirrored=5, agreed=0), Totals(), 9)["verdict"] == (
        "Wait"
    )


#
# Gates read from the metrics: stored minutes plus reports still in Redis
#
def report(deployment: OnlineDeployment, minute: int, ok: int = 0, server_errors: int = 0):
    from controlplane.core.services import routing

    key = metrics_key(minute, str(deployment.pk))
    fields = {REQUESTS.format("2xx"): ok, REQUESTS.format("5xx"): server_errors}
    fields[LATENCY.format(LATENCY_BUCKETS.index(0.01))] = ok + server_errors
    routing.client().hset(key, mapping=fields)
    routing.client().expire(key, 60)


def stored(deployment: OnlineDeployment, minute: int, ok: int = 0, server_errors: int = 0):
    buckets = [0] * (len(LATENCY_BUCKETS) + 1)
    buckets[LATENCY_BUCKETS.index(0.01)] = ok + server_errors
    DeploymentMinute.objects.create(
        deployment=deployment,
        minute=datetime.fromtimestamp(minute, UTC),
        requests_2xx=ok,
        requests_5xx=server_errors,
        latency_buckets=buckets,
        latency_seconds=0.01 * (ok + server_errors),
    )


def test_fresh_totals_add_stored_minutes_and_reports_not_yet_collected(endpoint):
    from controlplane.metrics import fresh

    blue = OnlineDeployment.objects.get(name="blue")
    now = time.time()
    this, last = minute_of(now), minute_of(now) - 60
    stored(blue, last, ok=10)
    stored(blue, last - 60, ok=1000)  # before the window
    report(blue, last, ok=5)  # a late report of a minute already collected
    report(blue, this, ok=7, server_errors=2)
    found = fresh.totals([blue.pk], last + 1, now)
    assert found[blue.pk].requests["2xx"] == 22 and found[blue.pk].requests["5xx"] == 2
    then = fresh.snapshot(found)
    report(blue, this, ok=9, server_errors=4)  # the routers' next report (HINCRBY'd)
    window = fresh.since(fresh.totals([blue.pk], last + 1, now), then)[blue.pk]
    assert (window.requests["2xx"], window.requests["5xx"]) == (2, 2)
    # A minute being collected is briefly in neither place: not a negative window.
    from controlplane.core.services import routing

    routing.client().delete(metrics_key(this, str(blue.pk)))
    assert fresh.since(fresh.totals([blue.pk], last + 1, now), then)[blue.pk] is None


def test_a_traffic_step_failing_on_the_metrics_rolls_back_to_the_baseline(client, endpoint):
    green = OnlineDeployment.objects.get(name="green")
    put(client, steps=[{"traffic": 20, "durationSeconds": 60, "minRequests": 10}])
    tick()
    run_operations()
    tick()
    assert state().phase == "Observing"
    endpoint.refresh_from_db()
    assert endpoint.traffic == {"blue": 80, "green": 20}
    # Counted after the step began: green answers 5xx for 4 of 12 requests.
    report(green, minute_of(time.time()), ok=8, server_errors=4)
    tick()
    rollout = state()
    assert rollout.phase == "RollingBack"
    failed = rollout.decisions[-1]
    assert (failed["event"], failed["verdict"]) == ("StepFailed", "Fail")
    assert failed["window"]["errors"] == 4 and failed["window"]["requests"] == 12
    gate = next(g for g in failed["gates"] if g["gate"] == "maxErrorRate")
    assert gate["value"] == pytest.approx(0.3333, abs=1e-4) and gate["passed"] is False
    run_operations()
    tick()
    assert state().status == "RolledBack"
    endpoint.refresh_from_db()
    assert endpoint.traffic == {"blue": 100, "green": 0}


def test_a_plan_that_passes_promotes_the_candidate(client, endpoint):
    green = OnlineDeployment.objects.get(name="green")
    put(client, steps=[{"traffic": 50, "minRequests": 10}])
    tick()
    run_operations()
    tick()
    report(green, minute_of(time.time()), ok=12)
    tick()
    assert state().phase == "Promoting"
    assert state().decisions[-1]["event"] == "StepPassed"
    run_operations()
    tick()
    assert state().status == "Succeeded"
    endpoint.refresh_from_db()
    assert endpoint.traffic == {"blue": 0, "green": 100}
