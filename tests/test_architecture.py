"""The arrows that run one way (DESIGN.md), checked on the source: every module of the project
is parsed (not imported) and each of its imports, those inside functions included, is
resolved to the module it names. Each rule in RULES is its own test; one more finds import
cycles. A failure lists every offending import with its file and line."""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The project's top-level packages. ``contracts`` holds what both sides of Redis agree on (the
# routing table's keys and entry shape), with no Django in it; it may not exist yet.
PROJECT = ("controlplane", "workers", "dataplane", "cli", "contracts")
DJANGO = ("django", "rest_framework")


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    path: Path
    line: int
    target: str  # the module imported, resolved

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} imports {self.target}"


@dataclass(frozen=True)
class Rule:
    """The modules in ``package`` (a package or one module) import nothing under the
    ``forbidden`` prefixes, except under the ``allowed`` ones."""

    package: str
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    may_be_missing: bool = False


def others(package: str) -> tuple[str, ...]:
    return tuple(name for name in PROJECT if name != package)


RULES = [
    Rule("dataplane", DJANGO + others("dataplane"), allowed=("contracts",)),
    Rule("dataplane.http", ("dataplane.inference",)),
    Rule("controlplane", others("controlplane"), allowed=("contracts",)),
    Rule("contracts", DJANGO + others("contracts"), may_be_missing=True),
    Rule("cli", others("cli"), allowed=("contracts",)),
]


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@cache
def modules() -> dict[str, Path]:
    """Every module of the project by dotted name (a package by its own name)."""
    found = {}
    for top in PROJECT:
        if (ROOT / f"{top}.py").is_file():
            found[top] = ROOT / f"{top}.py"
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if "__pycache__" in parts:
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imports_of(module: str, path: Path) -> list[Import]:
    """What ``module`` imports. ``from a import b`` names ``a.b`` when that is a module of the
    project and ``a`` otherwise; relative imports are resolved against the module's package."""
    known = modules()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(module, path, node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            for alias in node.names:
                submodule = f"{base}.{alias.name}" if base else alias.name
                target = submodule if submodule in known else base
                found.append(Import(module, path, node.lineno, target))
    # ``from a import b, c`` is one import of ``a``; in the order of the file.
    return sorted(set(found), key=lambda each: (each.line, each.target))


@cache
def all_imports() -> list[Import]:
    return [each for module, path in modules().items() for each in imports_of(module, path)]


def offenders(rule: Rule) -> list[Import]:
    return [
        each
        for each in all_imports()
        if under(each.module, rule.package)
        and any(under(each.target, prefix) for prefix in rule.forbidden)
        and not any(under(each.target, prefix) for prefix in rule.allowed)
    ]


@pytest.mark.parametrize("rule", RULES, ids=[rule.package for rule in RULES])
def test_imports_run_one_way(rule: Rule):
    if not any(under(module, rule.package) for module in modules()):
        if rule.may_be_missing:
            pytest.skip(f"{rule.package} does not exist yet")
        pytest.fail(f"no module {rule.package}: the rule checks nothing", pytrace=False)
    found = offenders(rule)
    if found:
        forbidden = [prefix for prefix in rule.forbidden if prefix not in rule.allowed]
        allowed = f" (it may import {', '.join(rule.allowed)})" if rule.allowed else ""
        pytest.fail(
            f"{rule.package} must import nothing of {', '.join(forbidden)}{allowed}:\n  "
            + "\n  ".join(str(each) for each in found),
            pytrace=False,
        )


def graph() -> dict[str, dict[str, Import]]:
    """module -> {module of the project it imports -> the first such import}."""
    edges: dict[str, dict[str, Import]] = {module: {} for module in modules()}
    for each in all_imports():
        if each.target in edges and each.target != each.module:
            edges[each.module].setdefault(each.target, each)
    return edges


def strongly_connected(edges: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that reach each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in edges[node]:
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            groups.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return [group for group in groups if len(group) > 1]


def shortest_cycle(edges: dict[str, dict[str, Import]], start: str, group: set[str]) -> list[str]:
    """The shortest path start -> ... -> start inside ``group`` (breadth first)."""
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for successor in sorted(edges[node]):
            if successor not in group:
                continue
            if successor == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if successor not in came_from:
                came_from[successor] = node
                queue.append(successor)
    raise AssertionError(f"{start} is in a cycle but no path leads back to it")


def import_cycles() -> list[list[str]]:
    """Each cycle as [a, b, ..., a]: for every module in a group that reaches itself, the
    shortest cycle through it (the same cycle found from two of its modules is kept once)."""
    edges = graph()
    cycles: dict[tuple[str, ...], list[str]] = {}
    for group in strongly_connected(edges):
        for start in group:
            cycle = shortest_cycle(edges, start, set(group))[:-1]
            first = cycle.index(min(cycle))
            rotated = cycle[first:] + cycle[:first]
            cycles.setdefault(tuple(rotated), [*rotated, rotated[0]])
    return list(cycles.values())


def test_no_import_cycles():
    """A deferred import (inside a function) that dodges a cycle at import time is still a
    cycle between the two modules."""
    edges = graph()
    cycles = import_cycles()
    if cycles:
        report = []
        for cycle in cycles:
            report.append(" -> ".join(cycle))
            report += [f"    {edges[a][b]}" for a, b in pairwise(cycle)]
        pytest.fail(f"{len(cycles)} import cycle(s):\n" + "\n".join(report), pytrace=False)
