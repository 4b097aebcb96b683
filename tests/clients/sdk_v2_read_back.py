"""Reads every kind of resource Weir serves through azure-ai-ml's entities, as a user of
Azure's SDK v2 does (``get``, ``list`` and the entity's YAML dump), and prints what came back
as one JSON document. The resources are made beforehand with the smallest REST bodies the
API takes, so every property the service fills in is the service's default.

Runs in the client's own virtualenv; configuration as weir_sdk.py reads it, plus
WEIR_ENDPOINT and WEIR_DEPLOYMENT (names to read).
"""

from __future__ import annotations

import json
import os

from weir_sdk import ml_client


def main() -> None:
    ml = ml_client()
    endpoint = os.environ["WEIR_ENDPOINT"]
    entities = {
        "workspace": ml.workspaces.get(),
        "endpoint": ml.online_endpoints.get(endpoint),
        "endpoints": list(ml.online_endpoints.list()),
        "deployment": ml.online_deployments.get(os.environ["WEIR_DEPLOYMENT"], endpoint),
        "deployments": list(ml.online_deployments.list(endpoint)),
        "model": ml.models.get("minimal", "1"),
        "models": list(ml.models.list()),
        "model_versions": list(ml.models.list("minimal")),
        "environment": ml.environments.get("minimal", "1"),
        "environments": list(ml.environments.list()),
        "code": ml._code.get("echo", "1"),
    }
    result = {}
    for name, value in entities.items():
        items = value if isinstance(value, list) else [value]
        # What dump() writes as YAML: it walks every field of the entity through its schema.
        result[name] = [json.loads(json.dumps(item._to_dict(), default=str)) for item in items]
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
