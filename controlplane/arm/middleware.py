"""Request ids and case-insensitive ARM paths, for every request."""

from __future__ import annotations

import re
import uuid

# Every literal segment Weir routes, keyed by its lower-case spelling. ARM paths are
# case-insensitive; URL patterns are not, so literals are put in canonical case first.
CANONICAL_SEGMENTS = {
    s.lower(): s
    for s in [
        "subscriptions",
        "resourceGroups",
        "providers",
        "Microsoft.MachineLearningServices",
        "workspaces",
        "computes",
        "onlineEndpoints",
        "deployments",
        "listKeys",
        "regenerateKeys",
        "token",
        "keyQuotas",
        "keyUsage",
        "getLogs",
        "skus",
        "scaleEvents",
        "rollouts",
        "pause",
        "resume",
        "abort",
        "models",
        "environments",
        "codes",
        "data",
        "versions",
        "startPendingUpload",
        "datastores",
        "listSecrets",
        "locations",
        "mfeOperationsStatus",
        "mfeOperationResults",
        "batchEndpoints",
        "jobs",
        "cancel",
        "runs",
        "details",
        "children",
        "rundata",
        "dataversion",
        "batchGetResolvedUris",
        "artifacts",
        "assets",
        "Weir.Access",
        "servicePrincipals",
        "users",
        "groups",
        "tokens",
        "setPassword",
        "revoke",
        "Microsoft.Authorization",
        "roleAssignments",
        "roleDefinitions",
        "Weir.Audit",
        "auditRecords",
        "Microsoft.Insights",
        "eventtypes",
        "values",
        "metrics",
        "metricDefinitions",
    ]
}

_CLIENT_ID = re.compile(r"[^A-Za-z0-9_-]")


# The data-plane services that address a workspace by its ARM path after their own prefix
# (run history, the management front end, data, batch scoring, SDK v1's artifacts and
# model management, and its compute GETs).
DATA_PLANE_PREFIXES = (
    "/history/v1.0",
    "/mferp/managementfrontend",
    "/data/v1.0",
    "/batch",
    "/artifact/v2.0",
    "/modelmanagement/v1.0",
    "/rp/workspaces",
)


def canonical_arm_path(path: str) -> str:
    """Canonicalize the literal (type) segments of an ARM path, leaving names as they are.

    ARM paths alternate type and name: /subscriptions/{s}/resourceGroups/{rg}/providers/
    {namespace}/workspaces/{ws}/...; a trailing odd segment is an action (listKeys).
    """
    lowered = path.lower()
    for prefix in DATA_PLANE_PREFIXES:
        if lowered.startswith(prefix + "/subscriptions/"):
            return prefix + canonical_arm_path(path[len(prefix) :])
    # Weir.Access lives at the root scope: /providers/Weir.Access/...
    if not lowered.startswith(("/subscriptions/", "/providers/")):
        return path
    segments = path.split("/")[1:]
    index = 0
    while index < len(segments):
        segment = segments[index].lower()
        if segment == "providers":
            segments[index] = "providers"
            if index + 1 < len(segments):
                namespace = segments[index + 1]
                segments[index + 1] = CANONICAL_SEGMENTS.get(namespace.lower(), namespace)
            index += 2
            continue
        segments[index] = CANONICAL_SEGMENTS.get(segment, segments[index])
        index += 2
    return "/" + "/".join(segments)


class ArmRequestMiddleware:
    """Gives every response an ``x-ms-request-id`` and routes ARM paths in any case."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = str(uuid.uuid4())
        request.path_info = canonical_arm_path(request.path_info)
        response = self.get_response(request)
        response["x-ms-request-id"] = request.request_id
        correlation = request.headers.get("x-ms-correlation-request-id")
        if correlation:
            response["x-ms-correlation-request-id"] = _CLIENT_ID.sub("", correlation)[:64]
        client_id = request.headers.get("x-ms-client-request-id")
        if client_id and request.headers.get("x-ms-return-client-request-id", "").lower() == "true":
            response["x-ms-client-request-id"] = _CLIENT_ID.sub("", client_id)[:40]
        return response
