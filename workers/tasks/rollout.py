"""Progressive rollouts: the controller's ticks (controlplane.rollout.controller), and the
reconciler that gives a rollout a new run once its run stopped ticking."""

from __future__ import annotations

import logging

from controlplane.rollout import controller
from workers.decorators import periodic_task, provisioning_task

log = logging.getLogger(__name__)


@provisioning_task(controller.RUN_ROLLOUT)
def run_rollout(self, *, rollout_id: str, runner: str) -> None:
    """One tick of the rollout if ``runner`` still owns it, then the next tick is sent with
    a countdown. Each tick is short, so a rollout holds no worker slot between ticks; a run
    whose worker died leaves its lease to lapse, and reconcile_rollouts starts another."""
    delay = controller.tick(rollout_id, runner)
    if delay is not None:
        controller.send(rollout_id, runner, delay)


@periodic_task("weir.reconcile_rollouts")
def reconcile_rollouts() -> int:
    """Rollouts in progress whose lease lapsed are given a new run (claimed with a
    conditional UPDATE on the lapsed lease, so one reconciler run re-drives each lapse).
    Returns how many."""
    redriven = 0
    for rollout in controller.lapsed()[:100]:
        try:
            if controller.start_run(rollout.pk, lapsed_lease=rollout.lease_expires_at):
                log.warning("re-driving rollout %s (%s)", rollout.name, rollout.status)
                redriven += 1
        except Exception:
            # One bad row must not stall the loop.
            log.exception("could not re-drive rollout %s", rollout.pk)
    return redriven
