"""Which requests are writes, and what each one does in Azure's terms: the operation name
(``Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write``) and the ARM id it acts
on, read from the path and the method alone, so a new route is audited without being named
here.

ARM paths alternate type and name after ``/providers/{namespace}`` (the last one, for
extension resources such as role assignments); a trailing odd segment is an action
(``.../onlineEndpoints/ep/regenerateKeys`` is ``.../onlineEndpoints/regenerateKeys/action`` on
the endpoint) unless it is one of the collections SDK v1 and batch scoring create into with a
POST (``.../batchEndpoints/ep/jobs`` is ``.../batchEndpoints/jobs/write``).
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.arm.middleware import DATA_PLANE_PREFIXES

WRITE_METHODS = {"PUT", "PATCH", "DELETE", "POST"}
# The prefixes whose writes are audited besides ARM's own paths: SDK v1's model management
# (models, web services, their keys) and batch scoring (jobs). The others carry run data
# (history, artifacts) or are queries sent as POSTs (data's batchGetResolvedUris).
AUDITED_PREFIXES = ("/modelmanagement/v1.0", "/batch")
# POSTs to these collections create a member (SDK v1 models and services, batch jobs).
CREATED_BY_POST = {"models", "services", "assets", "jobs"}
# POSTs that read and change nothing: SDK v1's .../services/validate (and /name/{n},
# /resource), as (type, name) pairs.
QUERIES = {("services", "validate")}


@dataclass(frozen=True)
class Target:
    action: str  # Azure's operation name
    resource_id: str  # the ARM id acted on (a collection's, for a POST that creates)
    # The path whose GET shows the resource before and after (with any data-plane prefix);
    # None when there is none to read (a POST creating into a collection).
    read_path: str | None


def target(method: str, path: str) -> Target | None:
    """What a request does, or None when it is not an audited write."""
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
    providers = [i for i, s in enumerate(segments) if s.lower() == "providers"]
    if providers and providers[-1] + 1 < len(segments):
        namespace = segments[providers[-1] + 1]
        typed = segments[providers[-1] + 2 :]
    else:
        namespace, typed = "Microsoft.Resources", segments
    types = typed[0::2]
    if not types:
        return None
    pairs = {(typed[i].lower(), typed[i + 1].lower()) for i in range(0, len(typed) - 1, 2)}
    if method == "POST" and pairs & QUERIES:
        return None
    verb = "delete" if method == "DELETE" else "write"
    if len(typed) % 2 == 0:
        # A resource: PUT, PATCH, DELETE (or a POST to it: an action without a name).
        suffix = "action" if method == "POST" else verb
        return Target(f"{namespace}/{'/'.join(types)}/{suffix}", arm, prefix + arm)
    # A trailing type: a collection a POST creates into, or an action on the resource before.
    if method == "POST" and typed[-1].lower() in CREATED_BY_POST:
        return Target(f"{namespace}/{'/'.join(types)}/write", arm, None)
    if method == "POST" and len(typed) > 1:
        resource = arm.rsplit("/", 1)[0]
        action = f"{namespace}/{'/'.join(types)}/action"
        return Target(action, resource, prefix + resource)
    return Target(f"{namespace}/{'/'.join(types)}/{verb}", arm, None)
