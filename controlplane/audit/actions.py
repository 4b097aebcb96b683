"""Which requests are writes, and what each does in Azure's terms: the action the
authorization check reads from the path and method (controlplane.access.actions), the ARM id
it acts on, and the path whose GET shows that resource before and after, so a new route is
audited without being named here."""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.access import actions as access_actions
from controlplane.arm.middleware import DATA_PLANE_PREFIXES

WRITE_METHODS = {"PUT", "PATCH", "DELETE", "POST"}
# The prefixes whose writes are audited besides ARM's own paths: SDK v1's model management
# (models, web services, their keys) and batch scoring (jobs). The others carry run data
# (history, artifacts) or are queries sent as POSTs (data's batchGetResolvedUris).
AUDITED_PREFIXES = ("/modelmanagement/v1.0", "/batch")
# POSTs to these collections create a member (SDK v1 models and services, batch jobs).
CREATED_BY_POST = access_actions.POSTED_COLLECTIONS
# POSTs that read and change nothing: SDK v1's .../services/validate (and /name/{n},
# /resource), as (type, name) pairs.
QUERIES = {("services", "validate")}
# POST actions that only read and hand out no secret: a deployment's logs (the portal's log
# panels ask for them every few seconds). listKeys, which reads secrets, stays recorded.
READ_ACTIONS = {"getlogs"}


@dataclass(frozen=True)
class Target:
    action: str  # Azure's operation name
    resource_id: str  # the ARM id acted on (a collection's, for a POST that creates)
    # The path whose GET shows the resource before and after (with any data-plane prefix);
    # None when there is none to read (a POST creating into a collection).
    read_path: str | None


def target(method: str, path: str) -> Target | None:
    """What a request does, or None when it is not an audited write. The action is the one
    authorization reads (controlplane.access.actions); this adds what to read before and
    after."""
    if method not in WRITE_METHODS:
        return None
    prefix = next(
        (p for p in DATA_PLANE_PREFIXES if path.lower().startswith(p.lower() + "/subscriptions/")),
        "",
    )
    if prefix and prefix not in AUDITED_PREFIXES:
        return None
    arm = path[len(prefix) :].rstrip("/")
    if not (arm.startswith("/subscriptions/") or arm.startswith("/providers/")):
        return None
    segments = arm.split("/")[1:]
    if any(not segment for segment in segments):
        return None
    pairs = {(segments[i].lower(), segments[i + 1].lower()) for i in range(len(segments) - 1)}
    if method == "POST" and (pairs & QUERIES or segments[-1].lower() in READ_ACTIONS):
        return None
    wanted = access_actions.of(method, arm)
    if wanted.action.endswith("/action"):
        # An action on the resource the path names before it.
        return Target(wanted.action, wanted.scope, prefix + wanted.scope)
    if method == "POST" and segments[-1].lower() in CREATED_BY_POST:
        return Target(wanted.action, arm, None)
    return Target(wanted.action, arm, prefix + arm)
