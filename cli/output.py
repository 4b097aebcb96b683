"""Results as the Azure CLI prints them: ``-o json`` (default), ``table``, ``tsv``, ``yaml``,
``none``; ``--query`` is a JMESPath expression applied first. A command may give its own view
for ``table`` (as the Azure CLI's table transformers), used when there is no query."""

from __future__ import annotations

import json

import jmespath
import yaml

from cli.errors import CliError


def render(result, output: str, query: str | None, view=None) -> str | None:
    if output == "table" and view is not None and not query and result is not None:
        return view(result)
    if query:
        try:
            result = jmespath.search(query, result)
        except jmespath.exceptions.JMESPathError as exc:
            raise CliError(f"--query '{query}' is not valid JMESPath: {exc}") from None
    if result is None or output == "none":
        return None
    if output == "json":
        return json.dumps(result, indent=2, sort_keys=False)
    if output == "yaml":
        return yaml.safe_dump(result, sort_keys=False).rstrip()
    if output == "tsv":
        return _tsv(result)
    if output == "table":
        return table(result)
    raise CliError(f"unknown output format '{output}'")


def _scalar(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _tsv(result) -> str:
    rows = result if isinstance(result, list) else [result]
    lines = []
    for row in rows:
        if isinstance(row, dict):
            lines.append("\t".join(_scalar(v) for v in row.values() if not isinstance(v, dict)))
        else:
            lines.append(_scalar(row))
    return "\n".join(lines)


def table(result) -> str:
    rows = result if isinstance(result, list) else [result]
    if not rows:
        return ""
    if not all(isinstance(row, dict) for row in rows):
        return "\n".join(_scalar(row) for row in rows)
    columns = [k for k, v in rows[0].items() if not isinstance(v, (dict, list))]
    cells = [[_scalar(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    titles = [column.replace("_", " ").title() for column in columns]
    header = "  ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([header, rule, *body])
