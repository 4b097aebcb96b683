"""Judging a step: the candidate's (and the baseline's) scoring since the step's traffic took
effect, against the step's gates. A pure function of the numbers, so it is tested with
crafted totals and every decision can show what drove it.

- A mirror step is judged on the copies the candidate answered as a shadow: their count is
  the sample, and ``minAgreement`` holds the share that agreed with the live answer (by the
  router, under the gates' ``comparison``, which the controller set on the endpoint).
- A traffic step is judged on the candidate's live requests: ``maxErrorRate`` holds the
  share of them answered with a status of ``errorStatusClasses`` (5xx by default; a scoring
  script that raises is answered 424, a 4xx, as Azure does), ``maxP99Ms`` their p99 latency,
  and ``maxP99Ratio`` that p99 against the baseline's over the same window.

Verdicts: once the sample holds at least ``minRequests`` (and at least one), a gate that
fails fails the step at once; the step passes when, in addition, ``durationSeconds`` have
passed and no gate fails. Otherwise it waits. A gate without data (no baseline requests for
the ratio) neither passes nor fails the step.
"""

from __future__ import annotations

from controlplane.metrics.aggregates import Totals

WAIT, PASS, FAIL = "Wait", "Pass", "Fail"


def _gate(name: str, value, threshold, passed: bool | None, **more) -> dict:
    return {"gate": name, "value": value, "threshold": threshold, "passed": passed, **more}


def _round(value):
    return None if value is None else round(value, 4)


def judge(step: dict, gates: dict, candidate: Totals, baseline: Totals, elapsed: float) -> dict:
    """The verdict on ``step`` after ``elapsed`` seconds, with the window's numbers and each
    gate's value against its threshold."""
    checked: list[dict] = []
    if "mirror" in step:
        sample = candidate.mirrored
        agreed = candidate.mirror_agreed
        window = {"seconds": round(elapsed, 1), "mirrored": sample, "agreed": agreed}
        if gates.get("minAgreement") is not None:
            share = agreed / sample if sample else None
            checked.append(
                _gate(
                    "minAgreement",
                    _round(share),
                    gates["minAgreement"],
                    None if share is None else share >= gates["minAgreement"],
                    comparison=gates.get("comparison", "exact"),
                )
            )
    else:
        sample = candidate.total
        classes = gates.get("errorStatusClasses") or ["5xx"]
        errors = sum(candidate.requests[c] for c in classes)
        window = {
            "seconds": round(elapsed, 1),
            "requests": sample,
            "errors": errors,
            "errorStatusClasses": classes,
            "baselineRequests": baseline.total,
            "baselineErrors": sum(baseline.requests[c] for c in classes),
        }
        if gates.get("maxErrorRate") is not None:
            rate = errors / sample if sample else None
            checked.append(
                _gate(
                    "maxErrorRate",
                    _round(rate),
                    gates["maxErrorRate"],
                    None if rate is None else rate <= gates["maxErrorRate"],
                )
            )
        p99 = candidate.latency_ms(0.99)
        if gates.get("maxP99Ms") is not None:
            checked.append(
                _gate(
                    "maxP99Ms",
                    _round(p99),
                    gates["maxP99Ms"],
                    None if p99 is None else p99 <= gates["maxP99Ms"],
                )
            )
        if gates.get("maxP99Ratio") is not None:
            base_p99 = baseline.latency_ms(0.99)
            limit = None if base_p99 is None else gates["maxP99Ratio"] * base_p99
            checked.append(
                _gate(
                    "maxP99Ratio",
                    _round(p99),
                    _round(limit),
                    None if p99 is None or limit is None else p99 <= limit,
                    ratio=gates["maxP99Ratio"],
                    baselineP99Ms=_round(base_p99),
                )
            )
    enough = sample >= max(step.get("minRequests", 0), 1 if checked else 0)
    failed = [g["gate"] for g in checked if g["passed"] is False]
    if enough and failed:
        verdict = FAIL
        reason = f"{', '.join(failed)} failed with {sample} in the window"
    elif enough and elapsed >= step.get("durationSeconds", 0):
        verdict = PASS
        reason = f"every gate held over {elapsed:.1f} s and {sample} in the window"
    else:
        verdict = WAIT
        wanted = []
        if sample < step.get("minRequests", 0):
            wanted.append(f"{sample} of {step['minRequests']} requests")
        if elapsed < step.get("durationSeconds", 0):
            wanted.append(f"{elapsed:.1f} of {step['durationSeconds']:g} s")
        reason = "waiting: " + (", ".join(wanted) or "no requests yet")
    return {"verdict": verdict, "reason": reason, "window": window, "gates": checked}
