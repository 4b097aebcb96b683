"""Scoring quotas by credential (beyond Azure): set them, and read the usage the routers
report."""

from __future__ import annotations

import json
import time

import redis
from django.db import transaction

from contracts.routing import CREDENTIALS, USAGE_STALE, usage_key
from controlplane.arm.errors import ArmError, conflict
from controlplane.core.choices import ProvisioningState
from controlplane.core.models import OnlineEndpoint
from controlplane.core.models.base import new_etag
from controlplane.core.services import routing


def set_quotas(endpoint: OnlineEndpoint, quotas: dict) -> OnlineEndpoint:
    """Replace the endpoint's quotas (validated: {credential: limits}); the router has
    them as soon as the entry is published, without an operation: nothing is provisioned."""
    with transaction.atomic():
        locked = OnlineEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if locked.provisioning_state == ProvisioningState.DELETING:
            raise conflict(f"Online endpoint '{locked.name}' is being deleted.")
        if locked.key_quotas != quotas:
            locked.key_quotas = quotas
            locked.etag = new_etag()
            locked.save(update_fields=["key_quotas", "etag", "modified_at"])
            routing.publish_on_commit(locked.pk)
    return locked


def usage(endpoint: OnlineEndpoint) -> dict:
    """The routers' reports for the endpoint, summed by credential: requests admitted and
    refused by the quota in the last minute, requests in flight, and the tokens left in the
    bucket (the fewest any router reports: each machine's router has its own bucket).
    Reports older than USAGE_STALE are from processes that are gone and are left out."""
    try:
        reports = routing.client().hgetall(usage_key(endpoint.workspace.name, endpoint.name))
    except redis.RedisError:
        raise ArmError(
            503, "ServiceUnavailable", "The routers' usage reports cannot be read now."
        ) from None
    totals = {
        name: {
            "requestsLastMinute": 0,
            "throttledLastMinute": 0,
            "inFlight": 0,
            "availableTokens": None,
        }
        for name in CREDENTIALS
    }
    fresh = 0
    oldest = time.time() - USAGE_STALE
    for raw in reports.values():
        report = json.loads(raw)
        counted = [u for u in report.values() if u.get("at", 0) >= oldest]
        if not counted:
            continue
        fresh += 1
        for name, used in report.items():
            total = totals.get(name)
            if total is None or used.get("at", 0) < oldest:
                continue
            for field in ("requestsLastMinute", "throttledLastMinute", "inFlight"):
                total[field] += used[field]
            tokens = used.get("availableTokens")
            if tokens is not None:
                known = total["availableTokens"]
                total["availableTokens"] = tokens if known is None else min(known, tokens)
    for name, quota in endpoint.key_quotas.items():
        # Nothing reported lately: the bucket has had time to fill.
        if quota.get("burst") and totals[name]["availableTokens"] is None:
            totals[name]["availableTokens"] = quota["burst"]
    return {**totals, "reportingProcesses": fresh}
