"""Rollout requests: create (and start), pause, resume, abort, delete. Requests change only
the rollout's row; the controller alone moves the endpoint's traffic."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from controlplane.arm.errors import conflict
from controlplane.core.models import OnlineEndpoint
from controlplane.rollout import controller, spec, states
from controlplane.rollout.models import Phase, Rollout, RolloutStatus

S = RolloutStatus


def find(endpoint: OnlineEndpoint, name: str) -> Rollout | None:
    return (
        Rollout.objects.filter(endpoint=endpoint, name__iexact=name)
        .select_related("endpoint__workspace")
        .first()
    )


def active_on(endpoint: OnlineEndpoint) -> Rollout | None:
    return Rollout.objects.filter(endpoint=endpoint, status__in=states.ACTIVE).first()


def create(endpoint: OnlineEndpoint, name: str, body, principal: str) -> tuple[Rollout, bool]:
    """PUT: start a rollout (201), or answer the same one when the body asks for what it
    already is (200). A rollout's plan cannot change once it started (409), nor can a second
    one start on an endpoint while one is in progress (409)."""
    with transaction.atomic():
        # The endpoint's lock orders two PUTs on the same endpoint: one of them sees the other.
        endpoint = OnlineEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        existing = find(endpoint, name)
        plan = spec.read(endpoint, body) if existing is None else None
        if existing is not None:
            if existing.status in states.ACTIVE:
                raise conflict(
                    f"Rollout '{name}' is {existing.status}; its plan cannot change while it "
                    "runs. Abort it, or start another rollout once it has ended.",
                    "name",
                )
            plan = spec.read(endpoint, body)
        running = active_on(endpoint)
        if running is not None:
            raise conflict(
                f"Rollout '{running.name}' is {running.status} on endpoint '{endpoint.name}'; "
                "one rollout runs on an endpoint at a time.",
                "name",
            )
        if existing is not None:
            existing.delete()
        try:
            with transaction.atomic():
                rollout = Rollout.objects.create(
                    endpoint=endpoint,
                    name=name,
                    created_by=principal,
                    modified_by=principal,
                    **plan,
                )
        except IntegrityError:
            raise conflict(
                f"Another rollout started on endpoint '{endpoint.name}' meanwhile.", "name"
            ) from None
        controller.start_run(rollout.pk)
    return find(endpoint, name), existing is None


def pause(rollout: Rollout, principal: str) -> Rollout:
    """Running -> Paused: the traffic stays where it is, and nothing is judged."""
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().get(pk=rollout.pk)
        if rollout.status == S.PAUSED:
            return rollout
        if rollout.status not in (S.RUNNING, S.PENDING) or rollout.phase in (
            Phase.PROMOTING,
            Phase.ROLLING_BACK,
        ):
            raise conflict(
                f"Rollout '{rollout.name}' is {rollout.status}"
                + (f" ({rollout.phase})" if rollout.status == S.RUNNING else "")
                + "; only a running step can be paused.",
                "status",
            )
        if rollout.status == S.PENDING:
            states.transition(rollout.pk, S.RUNNING)
        states.transition(rollout.pk, S.PAUSED, modified_by=principal)
        _note(rollout.pk, "Paused", f"paused by {principal}")
    return find(rollout.endpoint, rollout.name)


def resume(rollout: Rollout, principal: str) -> Rollout:
    """Paused -> Running: the current step starts its window again (what was counted while
    paused is not judged), and a new controller run takes the rollout."""
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().get(pk=rollout.pk)
        if rollout.status == S.RUNNING:
            return rollout
        if rollout.status != S.PAUSED:
            raise conflict(
                f"Rollout '{rollout.name}' is {rollout.status}; only a paused one resumes.",
                "status",
            )
        fields = {"modified_by": principal}
        if rollout.phase == Phase.OBSERVING:
            # The step is judged again from now: back to Applying, which finds the traffic
            # set already and starts the window.
            fields["phase"] = Phase.APPLYING
        states.transition(rollout.pk, S.RUNNING, **fields)
        _note(rollout.pk, "Resumed", f"resumed by {principal}")
        controller.start_run(rollout.pk)
    return find(rollout.endpoint, rollout.name)


def abort(rollout: Rollout, principal: str) -> Rollout:
    """Ask the controller to give the baseline all the traffic back (in one step) and end
    RolledBack. A rollout that has ended is left as it is (409)."""
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().get(pk=rollout.pk)
        if rollout.status in states.TERMINAL:
            raise conflict(f"Rollout '{rollout.name}' has ended ({rollout.status}).", "status")
        if not rollout.abort_requested_by:
            Rollout.objects.filter(pk=rollout.pk).update(
                abort_requested_by=principal, modified_by=principal, modified_at=timezone.now()
            )
            controller.start_run(rollout.pk)
    return find(rollout.endpoint, rollout.name)


def delete(rollout: Rollout) -> None:
    """DELETE: only a rollout that has ended (its record goes); abort a running one first."""
    with transaction.atomic():
        rollout = Rollout.objects.select_for_update().get(pk=rollout.pk)
        if rollout.status in states.ACTIVE:
            raise conflict(
                f"Rollout '{rollout.name}' is {rollout.status}; abort it before deleting it.",
                "status",
            )
        rollout.delete()


def _note(rollout_id, event: str, reason: str) -> None:
    rollout = Rollout.objects.get(pk=rollout_id)
    controller.record(rollout, event, reason=reason)
    rollout.save(update_fields=["decisions"])
