"""How the router compares a shadow deployment's answer with the live one: the rule an
endpoint's ``mirrorComparison`` sets, as the routing table carries it.

Two answers agree when their statuses are equal and their bodies are (as JSON; a body that is
not JSON must be the same bytes). Numbers agree when ``|shadow - live| <= tolerance *
max(1, |live|)``: relative to the live value's magnitude, absolute below 1. Strings, booleans
and null must be equal, lists have the same length and objects the same keys. With a
``path`` only what it selects is compared, in both answers; a path that selects nothing in
either answer (or an answer that is not JSON) is a disagreement.

Paths are a subset of JSONPath: ``$`` (the whole answer), then any of ``.key``,
``['key']`` (a key with other characters), ``[index]`` (from 0; negative counts from the
end) and ``[*]`` / ``.*`` (every item of a list, or every value of an object in key order).
Parsed once, when the entry is read, so a comparison only walks the answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# The rule before endpoints could set one, and still the default: the whole answer, numbers
# within 1e-6.
DEFAULT_TOLERANCE = 1e-6
MAX_PATH = 256

KEY, INDEX, EVERY = "key", "index", "every"
_STEP = re.compile(
    r"""\.(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)
      | \.(?P<dot_star>\*)
      | \[\s*(?:
            (?P<index>-?\d+)
          | (?P<star>\*)
          | '(?P<single>[^'\\]*)'
          | "(?P<double>[^"\\]*)"
        )\s*\]""",
    re.VERBOSE,
)


def parse_path(text: str) -> tuple[tuple[str, str | int | None], ...]:
    """The steps of a path (``(KEY, name)``, ``(INDEX, n)``, ``(EVERY, None)``). Raises
    ValueError saying what is wrong."""
    if not isinstance(text, str) or not text.startswith("$"):
        raise ValueError("a path starts with $ (the whole answer)")
    if len(text) > MAX_PATH:
        raise ValueError(f"a path has at most {MAX_PATH} characters")
    steps: list[tuple[str, str | int | None]] = []
    at = 1
    while at < len(text):
        match = _STEP.match(text, at)
        if match is None:
            raise ValueError(
                f"unsupported at character {at + 1} ({text[at : at + 10]!r}); a path is $ "
                "followed by .key, ['key'], [index] or [*]"
            )
        if match["name"] is not None:
            steps.append((KEY, match["name"]))
        elif match["index"] is not None:
            steps.append((INDEX, int(match["index"])))
        elif match["star"] is not None or match["dot_star"] is not None:
            steps.append((EVERY, None))
        else:
            steps.append((KEY, match["single"] if match["single"] is not None else match["double"]))
        at = match.end()
    return tuple(steps)


def select(document, steps) -> list:
    """What ``steps`` select in a parsed JSON ``document``, in order; [] when nothing."""
    found = [document]
    for kind, arg in steps:
        following = []
        for value in found:
            if kind == KEY:
                if isinstance(value, dict) and arg in value:
                    following.append(value[arg])
            elif kind == INDEX:
                if isinstance(value, list) and -len(value) <= arg < len(value):
                    following.append(value[arg])
            elif isinstance(value, list):
                following.extend(value)
            elif isinstance(value, dict):
                # Key order, not the answer's order: two answers may list keys differently.
                following.extend(value[k] for k in sorted(value))
        found = following
    return found


@dataclass(frozen=True, slots=True)
class MirrorComparison:
    """An endpoint's comparison rule. ``path`` None compares the whole answer."""

    tolerance: float = DEFAULT_TOLERANCE
    path: str | None = None
    steps: tuple = field(default=(), compare=False, repr=False)

    @classmethod
    def of(cls, tolerance: float = DEFAULT_TOLERANCE, path: str | None = None):
        """A rule with its path parsed (ValueError when it is not supported)."""
        if not isinstance(tolerance, int | float) or isinstance(tolerance, bool):
            raise ValueError("tolerance is a number")
        if not 0 <= tolerance < float("inf"):
            raise ValueError("tolerance is a finite number, at least 0")
        return cls(float(tolerance), path, parse_path(path) if path is not None else ())

    def to_wire(self) -> dict:
        return {"tolerance": self.tolerance, "path": self.path}

    @classmethod
    def from_wire(cls, data: dict | None) -> MirrorComparison | None:
        if not data:
            return None
        return cls.of(data.get("tolerance", DEFAULT_TOLERANCE), data.get("path"))


DEFAULT = MirrorComparison()
