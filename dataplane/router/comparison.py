"""Whether a shadow deployment answered a mirrored request as the live one did, by the
endpoint's rule (contracts.comparison, which says what agreeing means). Runs after both
answers are in, off the client's response path."""

from __future__ import annotations

import json

from contracts.comparison import DEFAULT, MirrorComparison, select


def same_answer(
    live_status: int,
    live_body: bytes,
    shadow_status: int,
    shadow_body: bytes,
    rule: MirrorComparison | None = None,
) -> bool:
    """Equal statuses, and the bodies (or what the rule's path selects in them) equal as
    JSON, numbers within the rule's tolerance."""
    rule = rule or DEFAULT
    if live_status != shadow_status:
        return False
    try:
        live, shadow = json.loads(live_body), json.loads(shadow_body)
    except ValueError:
        # Not JSON: only the whole answer can be compared, byte for byte.
        return rule.path is None and live_body == shadow_body
    if rule.path is None:
        return _close(live, shadow, rule.tolerance)
    live_found, shadow_found = select(live, rule.steps), select(shadow, rule.steps)
    return (
        bool(live_found)
        and len(live_found) == len(shadow_found)
        and all(_close(a, b, rule.tolerance) for a, b in zip(live_found, shadow_found, strict=True))
    )


def _close(live, shadow, tolerance: float) -> bool:
    if isinstance(live, bool) or isinstance(shadow, bool):
        return type(live) is type(shadow) and live == shadow  # True is not 1
    if isinstance(live, int | float) and isinstance(shadow, int | float):
        return abs(shadow - live) <= tolerance * max(1.0, abs(live))
    if isinstance(live, list) and isinstance(shadow, list):
        return len(live) == len(shadow) and all(
            _close(a, b, tolerance) for a, b in zip(live, shadow, strict=True)
        )
    if isinstance(live, dict) and isinstance(shadow, dict):
        return live.keys() == shadow.keys() and all(
            _close(live[k], shadow[k], tolerance) for k in live
        )
    return live == shadow
