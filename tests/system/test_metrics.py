"""Scoring metrics on the real stack: requests scored through the router are counted by its
processes, collected from Redis by the beat worker once their minute is complete, and read
back through Azure Monitor's metrics API."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.system.test_router import endpoint, eventually, score, set_traffic  # noqa: F401

pytestmark = pytest.mark.system


def test_requests_scored_are_read_back_through_the_metrics_api(stack, endpoint):  # noqa: F811
    set_traffic(stack, endpoint, {"blue": 100, "green": 0})
    uri = stack.call("GET", endpoint).json()["properties"]["scoringUri"]
    key = stack.call("POST", f"{endpoint}/listKeys").json()["primaryKey"]
    started = datetime.now(UTC).replace(second=0, microsecond=0)

    def scored(**headers) -> int:
        # New connections: the kernel spreads them over the router's two serving processes.
        return score(stack, uri, key, Connection="close", **headers).status_code

    assert [scored() for _ in range(20)] == [200] * 20
    assert [scored(**{"azureml-model-deployment": "green"}) for _ in range(3)] == [200] * 3

    span = f"{started:%Y-%m-%dT%H:%M:%SZ}/{started + timedelta(minutes=10):%Y-%m-%dT%H:%M:%SZ}"
    query = (
        f"{endpoint}/providers/Microsoft.Insights/metrics?api-version=2023-10-01"
        f"&metricnames=RequestsPerMinute,RequestLatency_P99&aggregation=Total,Average"
        f"&timespan={span}&interval=FULL&$filter=deployment eq '*'"
    )

    def totals():
        answer = stack.call("GET", query)
        assert answer.status_code == 200, answer.text
        series = answer.json()["value"][0]["timeseries"]
        return {s["metadatavalues"][0]["value"]: s["data"][0]["total"] for s in series}

    # Collected once the minute is complete (up to a minute and the grace from now).
    assert eventually(lambda: totals() == {"blue": 20, "green": 3}, timeout=100), totals()
    latency = stack.call("GET", query).json()["value"][1]["timeseries"]
    assert all(0 < s["data"][0]["average"] < 5000 for s in latency)
