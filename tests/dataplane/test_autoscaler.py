"""The autoscaler's decision rule, one polling interval at a time."""

from dataclasses import replace

from contracts.routing import AutoscaleRoute
from dataplane.router.autoscaler import Tracker, decide

SETTINGS = AutoscaleRoute(
    min_instances=1, max_instances=4, target_utilization_percentage=50, polling_interval=1.0
)
DELAY = 60.0


def tracker() -> Tracker:
    return Tracker(0.0, [], [], [])


def test_above_target_scales_up_at_once_to_the_count_wanted():
    decision = decide(SETTINGS, tracker(), 1, 150.0, now=1.0, delay=DELAY)
    assert (decision.action, decision.to_instances) == ("ScaleUp", 3)
    assert "150% against a target of 50%" in decision.reason


def test_up_is_capped_at_max_and_at_max_is_reported_once_a_minute():
    t = tracker()
    assert decide(SETTINGS, t, 2, 400.0, now=1.0, delay=DELAY).to_instances == 4
    at_max = decide(SETTINGS, t, 4, 200.0, now=2.0, delay=DELAY)
    assert (at_max.action, at_max.to_instances) == ("AtMaxInstances", 4)
    assert "16 instance(s) wanted, maxInstances is 4" in at_max.reason
    assert decide(SETTINGS, t, 4, 200.0, now=30.0, delay=DELAY) is None
    assert decide(SETTINGS, t, 4, 200.0, now=62.0, delay=DELAY).action == "AtMaxInstances"


def test_down_waits_for_the_delay_and_keeps_the_peak_wanted_meanwhile():
    t = tracker()
    assert decide(SETTINGS, t, 4, 10.0, now=0.0, delay=DELAY) is None  # wants 1
    assert decide(SETTINGS, t, 4, 35.0, now=30.0, delay=DELAY) is None  # wants 3
    down = decide(SETTINGS, t, 4, 10.0, now=60.0, delay=DELAY)
    assert (down.action, down.to_instances) == ("ScaleDown", 3)


def test_a_busy_interval_restarts_the_cool_down():
    t = tracker()
    assert decide(SETTINGS, t, 2, 0.0, now=0.0, delay=DELAY) is None
    assert decide(SETTINGS, t, 2, 50.0, now=50.0, delay=DELAY) is None  # at target: reset
    assert decide(SETTINGS, t, 2, 0.0, now=70.0, delay=DELAY) is None
    assert decide(SETTINGS, t, 2, 0.0, now=130.0, delay=DELAY).to_instances == 1


def test_never_below_min_and_a_count_outside_the_limits_is_moved_back():
    settings = replace(SETTINGS, min_instances=2)
    assert decide(settings, tracker(), 2, 0.0, now=0.0, delay=0.0) is None
    back = decide(settings, tracker(), 6, 0.0, now=0.0, delay=DELAY)
    assert (back.action, back.to_instances) == ("ScaleDown", 4)
    assert decide(settings, tracker(), 1, 0.0, now=0.0, delay=DELAY).to_instances == 2


def test_exactly_at_target_holds():
    assert decide(SETTINGS, tracker(), 3, 50.0, now=0.0, delay=0.0) is None


ZERO = replace(SETTINGS, min_instances=0, scale_to_zero_after=10.0)


def test_with_min_zero_low_load_keeps_one_replica_and_only_idleness_removes_it():
    t = tracker()
    down = decide(ZERO, t, 2, 0.0, now=0.0, delay=0.0, idle=False)
    assert (down.action, down.to_instances) == ("ScaleDown", 1)  # not to zero
    assert decide(ZERO, t, 1, 0.0, now=100.0, delay=0.0, idle=False) is None
    assert decide(ZERO, t, 1, 0.0, now=101.0, delay=0.0, idle=True) is None  # idle since 100
    assert decide(ZERO, t, 1, 0.0, now=105.0, delay=0.0, idle=False) is None  # a request
    assert decide(ZERO, t, 1, 0.0, now=106.0, delay=0.0, idle=True) is None
    zero = decide(ZERO, t, 1, 0.0, now=115.0, delay=0.0, idle=True)
    assert (zero.action, zero.to_instances) == ("ScaleDown", 0)
    assert zero.reason == "no requests for 10 s (scaleToZeroAfter): scaled to zero"


def test_at_zero_nothing_is_decided_the_router_activates():
    assert decide(ZERO, tracker(), 0, 0.0, now=0.0, delay=0.0, idle=True) is None
