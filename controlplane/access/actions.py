"""The action a request performs and the scope it performs it on, read from its path and
method as Azure names them: ``{namespace}/{type}/.../{read|write|delete}`` or
``{namespace}/{type}/{action}/action``, over the resource's ARM id.

- ``GET`` reads (a path ending in a type lists that type, over the parent's scope);
  ``PUT``/``PATCH`` write; ``DELETE`` deletes; ``POST`` to ``…/{name}/{verb}`` is the action
  ``{type}/{verb}/action``, and ``POST`` to a collection of the data-plane services (SDK v1's
  ``services``, ``models``, ``assets``; batch ``jobs``) writes a new member.
- Subscriptions and resource groups are ``Microsoft.Resources``' types; a ``providers`` segment
  starts a namespace (an extension resource such as ``…/providers/Microsoft.Authorization/
  roleAssignments/{id}`` is that namespace's type, over a scope that is its own id).
- The data-plane services that address a workspace by its ARM path after their own prefix
  (controlplane.arm.middleware.DATA_PLANE_PREFIXES) are read as that ARM path.
"""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.arm.middleware import DATA_PLANE_PREFIXES

# Collections the data-plane services create members in by POST.
POSTED_COLLECTIONS = frozenset({"services", "models", "assets", "jobs"})
VERBS = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}


@dataclass(frozen=True)
class Request:
    action: str
    # The ARM id the action is over (a list's is its parent's); "/" for the root.
    scope: str
    # Whether the request lists a collection (its rows are each checked for read).
    lists: bool = False
    # The action a member of the listed collection needs to be shown.
    row_action: str = ""


def arm_path(path: str) -> str:
    """The ARM path of a request: a data-plane service's prefix taken off."""
    lowered = path.lower()
    for prefix in DATA_PLANE_PREFIXES:
        if lowered.startswith(prefix + "/subscriptions/"):
            return path[len(prefix) :]
    return path


def of(method: str, path: str) -> Request:
    """The action and scope of ``method path`` (a path canonicalized by the middleware)."""
    segments = [s for s in arm_path(path).split("/") if s]
    namespace = ""
    types: list[str] = []
    resource: list[str] = []  # the segments of the resource id so far
    index = 0
    while index < len(segments):
        segment = segments[index]
        if segment.lower() == "providers" and index + 1 < len(segments):
            namespace = segments[index + 1]
            types = []
            resource += segments[index : index + 2]
            index += 2
            continue
        types.append(segment)
        if index + 1 < len(segments):
            resource += segments[index : index + 2]
            index += 2
            continue
        # A trailing odd segment: a collection (listed, or posted to) or an action.
        return _trailing(method, namespace, types, resource, segment)
    kind = _type(namespace, types)
    verb = VERBS.get(method.upper(), "write")
    return Request(f"{kind}/{verb}", _scope(resource))


def _trailing(method: str, namespace: str, types: list[str], resource: list[str], segment: str):
    method = method.upper()
    parent = _scope(resource)
    if method == "POST":
        if segment in POSTED_COLLECTIONS:
            return Request(f"{_type(namespace, types)}/write", parent)
        return Request(f"{_type(namespace, types[:-1])}/{segment}/action", parent)
    kind = _type(namespace, types)
    verb = VERBS.get(method, "write")
    return Request(f"{kind}/{verb}", parent, lists=verb == "read", row_action=f"{kind}/read")


def _type(namespace: str, types: list[str]) -> str:
    if not namespace:
        # subscriptions[/resourceGroups]: Azure Resource Manager's own types.
        return "/".join(["Microsoft.Resources", *types]) if types else "Microsoft.Resources"
    return "/".join([namespace, *types])


def _scope(resource: list[str]) -> str:
    """The ARM id the segments name; a trailing ``providers/{namespace}`` (a collection
    listed across a subscription) is not a resource: its scope is what it follows."""
    if len(resource) >= 2 and resource[-2].lower() == "providers":
        resource = resource[:-2]
    return "/" + "/".join(resource) if resource else "/"
