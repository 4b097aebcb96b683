"""Azure Monitor's metrics client (azure-monitor-query's ``MetricsQueryClient``), unchanged,
reads an online endpoint's and a deployment's metrics from Weir as an Azure user reads them
from ARM, and prints as JSON what it parsed. Imports nothing of Weir: it runs in the
client's own virtualenv.

Configuration (environment): WEIR_URL (the ARM endpoint), REQUESTS_CA_BUNDLE, WEIR_TOKEN,
WEIR_ENDPOINT_ID and WEIR_DEPLOYMENT_ID (ARM ids), WEIR_SINCE (ISO 8601, the timespan's
start; it ends now).
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError
from azure.monitor.query import MetricAggregationType, MetricsQueryClient


class WeirCredential:
    """A TokenCredential whose token is a Weir API token (as a user would write one)."""

    def __init__(self, token: str):
        self.token = token

    def get_token(self, *scopes, **kwargs) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def main() -> None:
    client = MetricsQueryClient(
        WeirCredential(os.environ["WEIR_TOKEN"]), endpoint=os.environ["WEIR_URL"]
    )
    endpoint_id = os.environ["WEIR_ENDPOINT_ID"]
    deployment_id = os.environ["WEIR_DEPLOYMENT_ID"]
    timespan = (datetime.fromisoformat(os.environ["WEIR_SINCE"]), datetime.now(UTC))

    definitions = {d.name: d for d in client.list_metric_definitions(endpoint_id)}
    requests = definitions["RequestsPerMinute"]

    counted = client.query_resource(
        endpoint_id,
        ["RequestsPerMinute"],
        timespan=timespan,
        granularity=timedelta(minutes=1),
        aggregations=[MetricAggregationType.TOTAL],
        filter="deployment eq '*'",
    )
    series = counted.metrics["RequestsPerMinute"].timeseries

    latency = client.query_resource(
        deployment_id,
        ["RequestLatency_P99"],
        timespan=timespan,
        granularity=timedelta(minutes=1),
        aggregations=[MetricAggregationType.AVERAGE],
    )
    p99 = latency.metrics["RequestLatency_P99"]

    try:
        client.query_resource(endpoint_id, ["NoSuchMetric"], timespan=timespan)
        unknown = None
    except HttpResponseError as error:
        unknown = {"status": error.status_code, "message": error.message}

    print(
        json.dumps(
            {
                "definitions": sorted(definitions),
                "requests_definition": {
                    "unit": requests.unit,
                    "primary": requests.primary_aggregation_type,
                    "dimensions": requests.dimensions,
                    "granularities": [
                        a.granularity.total_seconds() for a in requests.metric_availabilities
                    ],
                },
                "requests": {
                    "granularity": counted.granularity.total_seconds(),
                    "namespace": counted.namespace,
                    "region": counted.resource_region,
                    "totals": {
                        s.metadata_values["deployment"]: sum(p.total or 0 for p in s.data)
                        for s in series
                    },
                    "timestamps": {
                        s.metadata_values["deployment"]: [p.timestamp.isoformat() for p in s.data]
                        for s in series
                    },
                },
                "latency": {
                    "unit": p99.unit,
                    "series": len(p99.timeseries),
                    "averages": [
                        p.average for s in p99.timeseries for p in s.data if p.average is not None
                    ],
                },
                "unknown_metric": unknown,
            }
        )
    )


if __name__ == "__main__":
    main()
