"""Azure Monitor's own metrics client (azure-monitor-query's ``MetricsQueryClient``),
unchanged and in a virtualenv of its own, reads back the requests scored through the real
router: tests/clients/monitor_metrics.py is what an Azure user writes; this test scores,
waits for the minute to be collected, runs it and checks what the SDK parsed."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime
from itertools import pairwise

import pytest

from tests.system.conftest import ROOT
from tests.system.test_azure_ai_ml import client_env
from tests.system.test_router import endpoint, score, set_traffic  # noqa: F401

# The client's python, from the virtualenv bin/test builds (bin/_prepare.sh,
# ensure_client_venv) for tests/clients/azure-monitor-query.txt.
CLIENT_PYTHON = os.environ.get("WEIR_AZURE_MONITOR_PYTHON")

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        not CLIENT_PYTHON,
        reason="WEIR_AZURE_MONITOR_PYTHON is not set: run the suite with bin/test",
    ),
]


def endpoint_totals(stack, endpoint: str, since: datetime) -> dict:  # noqa: F811
    """Requests per deployment since ``since``, as Weir has stored them (plain HTTP)."""
    answer = stack.call(
        "GET",
        f"{endpoint}/providers/Microsoft.Insights/metrics?api-version=2024-02-01"
        f"&metricnames=RequestsPerMinute&aggregation=Total&interval=PT1M"
        f"&timespan={since:%Y-%m-%dT%H:%M:%SZ}/{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ}"
        f"&$filter=deployment eq '*'",
    )
    assert answer.status_code == 200, answer.text
    return {
        s["metadatavalues"][0]["value"]: sum(p.get("total", 0) for p in s["data"])
        for s in answer.json()["value"][0]["timeseries"]
    }


def test_azures_metrics_client_reads_what_the_router_counted(stack, endpoint):  # noqa: F811
    set_traffic(stack, endpoint, {"blue": 100, "green": 0})
    uri = stack.call("GET", endpoint).json()["properties"]["scoringUri"]
    key = stack.call("POST", f"{endpoint}/listKeys").json()["primaryKey"]
    since = datetime.now(UTC).replace(second=0, microsecond=0)

    def scored(deployment: str) -> str:
        answer = score(
            stack, uri, key, Connection="close", **{"azureml-model-deployment": deployment}
        )
        assert answer.status_code == 200, answer.text
        return answer.json()["who"]

    assert [scored("blue") for _ in range(12)] == ["blue"] * 12
    assert [scored("green") for _ in range(4)] == ["green"] * 4

    # Collected once the minute is complete (up to a minute and the grace from now).
    deadline = time.monotonic() + 100
    while endpoint_totals(stack, endpoint, since) != {"blue": 12, "green": 4}:
        assert time.monotonic() < deadline, endpoint_totals(stack, endpoint, since)
        time.sleep(1)

    done = subprocess.run(
        [CLIENT_PYTHON, str(ROOT / "tests" / "clients" / "monitor_metrics.py")],
        env={
            **client_env(),
            "WEIR_URL": stack.base_url,
            # What the README tells users to do to trust Weir's certificate.
            "REQUESTS_CA_BUNDLE": stack.ca_bundle,
            "WEIR_TOKEN": stack.token,
            "WEIR_ENDPOINT_ID": endpoint,
            "WEIR_DEPLOYMENT_ID": f"{endpoint}/deployments/blue",
            "WEIR_SINCE": since.isoformat(),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    parsed = json.loads(done.stdout)

    assert {"RequestsPerMinute", "RequestLatency_P99"} <= set(parsed["definitions"])
    assert parsed["requests_definition"] == {
        "unit": "Count",
        "primary": "Average",
        "dimensions": ["deployment", "statusCodeClass"],
        "granularities": [60, 300, 900, 1800, 3600, 21600, 43200, 86400],
    }

    requests = parsed["requests"]
    assert requests["totals"] == {"blue": 12, "green": 4}
    assert requests["granularity"] == 60
    assert requests["namespace"] == "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
    assert requests["region"] == "local"
    # One point a minute from the timespan's start, parsed as datetimes by the SDK.
    for stamps in requests["timestamps"].values():
        minutes = [datetime.fromisoformat(stamp) for stamp in stamps]
        assert minutes[0] == since
        assert all((b - a).total_seconds() == 60 for a, b in pairwise(minutes))

    latency = parsed["latency"]
    assert latency["unit"] == "MilliSeconds"
    assert latency["series"] == 1
    assert latency["averages"]
    assert all(isinstance(v, float | int) and 0 < v < 5000 for v in latency["averages"])

    unknown = parsed["unknown_metric"]
    assert unknown is not None, "an unknown metric name raised nothing"
    assert unknown["status"] == 400
    # azure-core's message carries ARM's error body: code, message and the parameter.
    assert "Target: metricnames" in unknown["message"], unknown["message"]
