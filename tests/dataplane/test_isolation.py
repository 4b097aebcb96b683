"""The data plane runs without Django or the control plane (replicas, router, agent)."""

import ast
from pathlib import Path

DATAPLANE = Path(__file__).resolve().parents[2] / "dataplane"


def test_dataplane_imports_neither_django_nor_the_control_plane():
    offenders = []
    for path in DATAPLANE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(DATAPLANE)}: {name}"
                for name in names
                if name.split(".")[0] in ("django", "rest_framework", "controlplane", "workers")
            ]
    assert offenders == []
