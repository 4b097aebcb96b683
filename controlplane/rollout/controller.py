"""The rollout controller: one tick moves a rollout on by at most one decision. A worker task
(workers/tasks/rollout.py) runs ticks about every WEIR_ROLLOUT_TICK_SECONDS while the
rollout is in progress.

One owner at a time: a run is started by giving the rollout a new ``runner`` id (when it is
created or resumed, and by the reconciler once its lease lapsed, that is its worker died);
a tick acts only under the row's lock and only while the rollout still names its runner,
and pushes the lease forward. So a run whose lease lapsed and was replaced stops at its next
tick, having done nothing, and two runs never act at once.

Traffic moves through the endpoint's own update (controlplane.core.services.endpoint's
create_or_update, with the endpoint's current settings and the step's traffic and mirror
traffic, and on a mirror step the gates' comparison as the endpoint's mirrorComparison), as
a user's PUT does: the same validation, the same operation, an audit record of the same
write (by the rollout, naming who started it), and the router has the change when that
operation has Succeeded. A step is judged from then.
"""

from __future__ import annotations

import logging
import uuid

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from controlplane import tasks
from controlplane.arm.errors import ArmError
from controlplane.audit import changes as audit_changes
from controlplane.audit import records
from controlplane.core.choices import OperationStatus
from controlplane.core.serializers.endpoint import OnlineEndpointSerializer
from controlplane.core.services import endpoint as endpoint_service
from controlplane.core.states import IllegalTransition
from controlplane.metrics import fresh
from controlplane.rollout import gates, spec
from controlplane.rollout.models import Phase, Rollout, RolloutStatus
from controlplane.rollout.states import ACTIVE, EDGES, TERMINAL

log = logging.getLogger(__name__)

S = RolloutStatus
RUN_ROLLOUT = "weir.run_rollout"
# Who the endpoint's traffic changes are recorded as (systemData, the operation).
PRINCIPAL = "weir-rollout"


def lease_deadline():
    return timezone.now() + timezone.timedelta(seconds=settings.WEIR_ROLLOUT_LEASE_SECONDS)


def tick_seconds() -> float:
    return settings.WEIR_ROLLOUT_TICK_SECONDS


#
# Runs
#
def start_run(rollout_id, *, lapsed_lease=None) -> bool:
    """Give the rollout a new run and send it (after commit). With ``lapsed_lease`` (the
    reconciler's), only if the lease is still that one: one re-drive per lapse."""
    runner = uuid.uuid4()
    rows = Rollout.objects.filter(pk=rollout_id, status__in=ACTIVE)
    if lapsed_lease is not None:
        rows = rows.filter(lease_expires_at=lapsed_lease)
    claimed = rows.update(
        runner=runner, lease_expires_at=lease_deadline(), attempts=F("attempts") + 1
    )
    if claimed == 1:
        transaction.on_commit(lambda: send(rollout_id, runner, 0))
    return claimed == 1


def send(rollout_id, runner, countdown: float) -> None:
    try:
        tasks.app.send_task(
            RUN_ROLLOUT,
            kwargs={"rollout_id": str(rollout_id), "runner": str(runner)},
            countdown=countdown,
        )
    except Exception:  # noqa: BLE001 - the lease lapses and the reconciler sends it again
        log.exception("could not send rollout %s", rollout_id)


def lapsed():
    """Rollouts whose run stopped pushing the lease forward and that need one: in progress,
    or paused with an abort to carry out."""
    now = timezone.now()
    return Rollout.objects.filter(lease_expires_at__lt=now).filter(
        status__in=(S.PENDING, S.RUNNING)
    ) | Rollout.objects.filter(
        lease_expires_at__lt=now, status=S.PAUSED, abort_requested_by__isnull=False
    )


#
# A tick
#
def tick(rollout_id, runner) -> float | None:
    """Move the rollout on by one decision if ``runner`` still owns it. Returns seconds
    until the next tick, or None when this run should stop (ended, paused, or taken over)."""
    with transaction.atomic():
        rollout = (
            Rollout.objects.select_for_update(of=("self",))
            .select_related("endpoint__workspace", "operation")
            .filter(pk=rollout_id, runner=runner)
            .first()
        )
        if rollout is None or rollout.status in TERMINAL:
            return None
        rollout.lease_expires_at = lease_deadline()
        if rollout.status == S.PAUSED and not rollout.abort_requested_by:
            rollout.save(update_fields=["lease_expires_at"])
            return None
        try:
            with transaction.atomic():
                delay = advance(rollout)
        except redis.RedisError as exc:
            # The fresh metrics are out of reach: judge nothing, keep the traffic, retry.
            rollout.refresh_from_db()
            rollout.lease_expires_at = lease_deadline()
            rollout.reading = {"time": timezone.now().isoformat(), "reason": f"no metrics: {exc}"}
            delay = tick_seconds()
        except Exception as exc:
            # One bad tick must not stop the rollout nor fill its record: say it once, retry.
            log.exception("rollout %s: tick failed", rollout.name)
            rollout.refresh_from_db()
            rollout.lease_expires_at = lease_deadline()
            reason = f"{type(exc).__name__}: {exc}"
            last = rollout.decisions[-1] if rollout.decisions else {}
            if last.get("event") != "Error" or last.get("reason") != reason:
                record(rollout, "Error", reason=reason)
            delay = tick_seconds()
        rollout.save()
        return delay


def advance(rollout: Rollout) -> float | None:
    operation = rollout.operation
    if operation is not None:
        if operation.status == OperationStatus.IN_PROGRESS:
            return tick_seconds()
        rollout.operation = None
        if operation.status != OperationStatus.SUCCEEDED:
            error = operation.error or {"code": "OperationFailed", "message": operation.status}
            return traffic_not_set(rollout, error)
        return applied(rollout)
    if rollout.abort_requested_by and rollout.phase != Phase.ROLLING_BACK:
        record(rollout, "Aborted", reason=f"aborted by {rollout.abort_requested_by}")
        return roll_back(rollout)
    if rollout.status == S.PENDING:
        move(rollout, S.RUNNING)
        record(rollout, "Started", reason=f"{rollout.candidate} against {rollout.baseline}")
        return apply(rollout)
    if rollout.phase == Phase.OBSERVING:
        return observe(rollout)
    return apply(rollout)  # a traffic change not started yet (the endpoint was busy)


def observe(rollout: Rollout) -> float:
    deployments = deployment_ids(rollout)
    if deployments is None:
        return fail(rollout, "DeploymentGone", "The candidate or the baseline was deleted.")
    candidate_id, baseline_id = deployments
    started = rollout.step_started_at
    found = fresh.totals([candidate_id, baseline_id], started.timestamp())
    window = fresh.since(found, rollout.step_snapshot or {})
    if window[candidate_id] is None or window[baseline_id] is None:
        return tick_seconds()  # a minute is being collected: read again
    elapsed = (timezone.now() - started).total_seconds()
    step = rollout.step
    judged = gates.judge(
        step, spec.gates_of(rollout, step), window[candidate_id], window[baseline_id], elapsed
    )
    rollout.reading = {"time": timezone.now().isoformat(), "step": rollout.current_step, **judged}
    if judged["verdict"] == gates.WAIT:
        return tick_seconds()
    record(rollout, "StepPassed" if judged["verdict"] == gates.PASS else "StepFailed", **judged)
    if judged["verdict"] == gates.FAIL:
        return roll_back(rollout)
    if rollout.current_step + 1 < len(rollout.steps):
        rollout.current_step += 1
        rollout.phase = Phase.APPLYING
        return apply(rollout)
    rollout.phase = Phase.PROMOTING
    return apply(rollout)


def roll_back(rollout: Rollout) -> float:
    rollout.phase = Phase.ROLLING_BACK
    rollout.operation = None
    return apply(rollout)


def applied(rollout: Rollout) -> float | None:
    """The traffic the phase asked for is what the router serves now."""
    if rollout.phase == Phase.ROLLING_BACK:
        move(rollout, S.ROLLED_BACK)
        record(
            rollout,
            "RolledBack",
            reason=f"{rollout.baseline} takes all the traffic",
            window=until_now(rollout),
        )
        return None
    if rollout.phase == Phase.PROMOTING:
        move(rollout, S.SUCCEEDED)
        record(rollout, "Promoted", reason=f"{rollout.candidate} takes all the traffic")
        return None
    deployments = deployment_ids(rollout)
    if deployments is None:
        return fail(rollout, "DeploymentGone", "The candidate or the baseline was deleted.")
    now = timezone.now()
    rollout.phase = Phase.OBSERVING
    rollout.step_started_at = now
    rollout.step_snapshot = fresh.snapshot(fresh.totals(deployments, now.timestamp()))
    rollout.reading = None
    traffic, mirror = wanted_traffic(rollout)
    record(rollout, "StepStarted", reason=describe(rollout.step), traffic=traffic, mirror=mirror)
    return tick_seconds()


def until_now(rollout: Rollout) -> dict | None:
    """The candidate's live requests and errors from the step's start until now (the
    traffic is back with the baseline): what clients saw of it, to the routers' last report."""
    deployments = deployment_ids(rollout)
    if deployments is None or rollout.step_started_at is None:
        return None
    started = rollout.step_started_at
    try:
        found = fresh.totals(deployments, started.timestamp())
    except redis.RedisError:
        return None
    candidate = fresh.since(found, rollout.step_snapshot or {})[deployments[0]]
    if candidate is None:
        return None
    classes = spec.gates_of(rollout, rollout.step or {}).get("errorStatusClasses") or ["5xx"]
    return {
        "seconds": round((timezone.now() - started).total_seconds(), 1),
        "requests": candidate.total,
        "errors": sum(candidate.requests[c] for c in classes),
        "errorStatusClasses": classes,
    }


def traffic_not_set(rollout: Rollout, error: dict) -> float | None:
    if rollout.phase == Phase.ROLLING_BACK:
        return fail(rollout, "RollbackFailed", error.get("message", str(error)))
    record(rollout, "TrafficNotSet", reason=error.get("message", str(error)))
    return roll_back(rollout)


def fail(rollout: Rollout, code: str, message: str) -> None:
    move(rollout, S.FAILED)
    rollout.error = {"code": code, "message": message}
    record(rollout, "Failed", reason=message)
    return None


#
# Traffic, through the endpoint's own update
#
def wanted_traffic(rollout: Rollout) -> tuple[dict, dict]:
    """(traffic, mirrorTraffic) for the rollout's phase and step."""
    names = list(rollout.endpoint.traffic or {})
    traffic = dict.fromkeys(names, 0)
    if rollout.phase == Phase.ROLLING_BACK:
        return {**traffic, rollout.candidate: 0, rollout.baseline: 100}, {}
    if rollout.phase == Phase.PROMOTING:
        return {**traffic, rollout.baseline: 0, rollout.candidate: 100}, {}
    step = rollout.step
    traffic[rollout.baseline] = step["baselineTraffic"]
    traffic[rollout.candidate] = step.get("traffic", 0)
    mirror = {rollout.candidate: step["mirror"]} if "mirror" in step else {}
    return traffic, mirror


def apply(rollout: Rollout) -> float | None:
    """Start the endpoint update that sets the phase's traffic; when the endpoint is busy
    with another change, try again next tick."""
    endpoint = rollout.endpoint
    endpoint.refresh_from_db()
    traffic, mirror = wanted_traffic(rollout)
    current = OnlineEndpointSerializer(endpoint).data
    properties = {
        k: v
        for k, v in current["properties"].items()
        if k in ("authMode", "compute", "description", "properties")
    }
    if mirror:
        # The step's comparison goes with its mirror traffic, in the same update: the
        # router has both at once. Otherwise the endpoint's stays as it is.
        comparison = spec.gates_of(rollout, rollout.step).get("comparison")
        properties["mirrorComparison"] = spec.endpoint_comparison(comparison)
    body = {
        "location": current["location"],
        "tags": current["tags"],
        "properties": {**properties, "traffic": traffic, "mirrorTraffic": mirror},
    }
    names = list(endpoint.deployments.values_list("name", flat=True))
    try:
        serializer = OnlineEndpointSerializer(
            data=body, context={"workspace": endpoint.workspace, "deployment_names": names}
        )
        serializer.is_valid(raise_exception=True)
        _, _, operation = endpoint_service.create_or_update(
            endpoint.workspace, endpoint.name, serializer.validated_data, PRINCIPAL, _no_check
        )
        audit(rollout, current, operation)
    except IllegalTransition:
        return tick_seconds()  # another change of the endpoint runs: after it
    except ArmError as exc:
        if exc.status_code == 409:
            return tick_seconds()
        return traffic_not_set(rollout, {"code": exc.code, "message": exc.message})
    except ValidationError as exc:
        return traffic_not_set(rollout, {"code": "TrafficNotSet", "message": str(exc.detail)})
    if operation is None:  # already so
        return applied(rollout)
    rollout.operation = operation
    return tick_seconds()


def _no_check(_etag) -> None:
    pass


def audit(rollout: Rollout, before: dict, operation) -> None:
    """The audit record of a traffic change the controller made, as a user's PUT of the
    endpoint is recorded: the write, its outcome, and the traffic before and after; by the
    rollout, with the principal who started it in its details."""
    endpoint = rollout.endpoint
    endpoint.refresh_from_db()
    records.write(
        principal_name=PRINCIPAL,
        principal_type="Rollout",
        action="Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write",
        resource_id=endpoint.arm_id,
        outcome=records.Outcome.SUCCEEDED if operation is None else records.Outcome.ACCEPTED,
        changes=audit_changes.diff(before, OnlineEndpointSerializer(endpoint).data),
        details={
            "rollout": rollout.arm_id,
            "startedBy": rollout.created_by,
            "step": rollout.current_step,
            "phase": rollout.phase,
        },
    )


#
# Helpers
#
def deployment_ids(rollout: Rollout):
    found = dict(
        (name.lower(), pk) for name, pk in rollout.endpoint.deployments.values_list("name", "pk")
    )
    candidate, baseline = found.get(rollout.candidate.lower()), found.get(rollout.baseline.lower())
    return None if candidate is None or baseline is None else (candidate, baseline)


def move(rollout: Rollout, target: str) -> None:
    """Change the status of a rollout this tick holds locked, along an edge."""
    if target not in EDGES.get(rollout.status, frozenset()):
        raise IllegalTransition(rollout.status, target)
    rollout.status = target
    if target in TERMINAL:
        rollout.ended_at = timezone.now()


def describe(step: dict | None) -> str:
    if step is None:
        return ""
    if "mirror" in step:
        return f"mirror {step['mirror']}% to the candidate"
    return f"traffic {step['traffic']}% to the candidate, {step['baselineTraffic']}% baseline"


def record(rollout: Rollout, event: str, *, reason: str = "", **numbers) -> None:
    """Add a decision, with the traffic it leaves and the numbers that drove it."""
    rollout.decisions = [
        *rollout.decisions,
        {
            "time": timezone.now().isoformat(),
            "step": rollout.current_step,
            "event": event,
            "verdict": numbers.pop("verdict", None),
            "reason": numbers.pop("reason", reason) or reason,
            **numbers,
        },
    ]
