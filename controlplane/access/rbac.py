"""Whether a principal may perform an action over a scope: the role assignments at that scope
or above it (``/`` is above everything) whose role allows the action, for the principal or a
group it is in. Actions match as Azure matches them (case-insensitive, ``*`` any characters);
a role allows what one of its permission blocks' ``actions`` matches and the same block's
``notActions`` does not."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from controlplane.access.models import RoleAssignment
from controlplane.access.principals import identities, principal_of


@lru_cache(maxsize=4096)
def pattern(text: str) -> re.Pattern:
    """``*`` is any characters; ``/*/`` also matches a single ``/`` (``computes/*/write``
    covers ``computes/write``, as Azure's built-in roles expect)."""
    regex = re.escape(text).replace(r"/\*/", "/(?:.*/)?").replace(r"\*", ".*")
    return re.compile(regex, re.IGNORECASE)


def matches(patterns, action: str) -> bool:
    return any(pattern(p).fullmatch(action) for p in patterns)


def role_allows(permissions: list[dict], action: str) -> bool:
    return any(
        matches(block.get("actions") or (), action)
        and not matches(block.get("notActions") or (), action)
        for block in permissions
    )


def scope_key(scope: str) -> str:
    """A scope as assignments are matched: lower-case, no trailing slash, ``/`` for the root."""
    key = "/" + scope.strip("/").lower()
    return key


def covers(assigned: str, scope: str) -> bool:
    """Whether an assignment at ``assigned`` applies at ``scope`` (both scope keys)."""
    return assigned == "/" or scope == assigned or scope.startswith(assigned + "/")


@dataclass(frozen=True)
class Grant:
    scope: str  # a scope key
    permissions: list


class Grants:
    """A principal's role assignments, read once per request."""

    def __init__(self, user):
        self.principal = principal_of(user)
        rows = RoleAssignment.objects.filter(principal_id__in=identities(user)).select_related(
            "role_definition"
        )
        self.grants = [Grant(row.scope_key, row.role_definition.permissions) for row in rows]

    def allows(self, action: str, scope: str) -> bool:
        key = scope_key(scope)
        return any(
            covers(grant.scope, key) and role_allows(grant.permissions, action)
            for grant in self.grants
        )

    def allows_below(self, action: str, scope: str) -> bool:
        """Whether some assignment strictly under ``scope`` allows the action (a list at
        ``scope`` then shows the rows it covers)."""
        key = scope_key(scope)
        return any(
            (key == "/" or grant.scope.startswith(key + "/"))
            and role_allows(grant.permissions, action)
            for grant in self.grants
        )
