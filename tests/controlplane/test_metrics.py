"""Scoring metrics by deployment and minute: the collector moving the routers' reports from
Redis into Postgres, the queries the portal and the API read them with, and Azure Monitor's
metrics API over endpoints and deployments."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from contracts.metrics import LATENCY_BUCKETS, index_key, metrics_key, minute_of
from controlplane.access import roles
from controlplane.core.models import OnlineDeployment, OnlineEndpoint, Workspace
from controlplane.core.services import routing
from controlplane.metrics import aggregates, queries, store
from controlplane.metrics.models import DeploymentMinute
from dataplane.router.minutes import MinuteReporter, Report
from tests.conftest import WS, assert_arm_error, url
from tests.controlplane.test_rbac import EP, assign, caller, denied

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
BUCKETS = len(LATENCY_BUCKETS) + 1
METRICS = f"{EP}/providers/Microsoft.Insights/metrics"


def histogram(**by_bound) -> list[int]:
    """Bucket counts from {"b<index>": count}."""
    buckets = [0] * BUCKETS
    for name, count in by_bound.items():
        buckets[int(name[1:])] = count
    return buckets


def row(deployment, minute: datetime, ok=0, server_errors=0, buckets=None, **fields):
    buckets = buckets or histogram(b4=ok + server_errors)  # 10..25 ms
    return DeploymentMinute(
        deployment=deployment,
        minute=minute,
        requests_2xx=ok,
        requests_5xx=server_errors,
        latency_buckets=buckets,
        latency_seconds=0.02 * sum(buckets),
        **fields,
    )


@pytest.fixture
def endpoint(client):
    response = client.put(url(""), {"location": "local"}, format="json")
    assert response.status_code == 201, response.content
    body = {"location": "local", "properties": {"authMode": "Key"}}
    response = client.put(url("/onlineEndpoints/ep1"), body, format="json")
    assert response.status_code == 201, response.content
    return OnlineEndpoint.objects.get(name="ep1")


def deployment(endpoint, name: str) -> OnlineDeployment:
    return OnlineDeployment.objects.create(
        endpoint=endpoint, name=name, location="local", endpoint_compute_type="Managed"
    )


@pytest.fixture
def blue(endpoint):
    return deployment(endpoint, "blue")


@pytest.fixture
def green(endpoint):
    return deployment(endpoint, "green")


#
# Percentiles
#
def test_a_percentile_is_interpolated_within_its_bucket():
    # 100 requests: 50 in (5, 10] ms, 50 in (10, 25] ms.
    buckets = histogram(b3=50, b4=50)
    assert aggregates.percentile(buckets, 0.5) == pytest.approx(10.0)
    assert aggregates.percentile(buckets, 0.25) == pytest.approx(7.5)
    assert aggregates.percentile(buckets, 0.99) == pytest.approx(10 + 15 * 49 / 50)
    assert aggregates.percentile(histogram(b0=4), 0.5) == pytest.approx(0.5)  # from 0 ms
    # Slower than the last bound: the last bound.
    assert aggregates.percentile(histogram(b0=1, **{f"b{BUCKETS - 1}": 99}), 0.99) == 30_000
    assert aggregates.percentile([0] * BUCKETS, 0.5) is None


#
# Series and summaries
#
def test_a_series_has_every_minute_with_zero_counts_and_no_gauges_where_nothing_came(blue):
    DeploymentMinute.objects.bulk_create(
        [
            row(blue, T0, ok=10, ready_replicas=2, queued=1),
            row(blue, T0 + 2 * MIN, ok=4, server_errors=1, ready_replicas=3, queued=0),
        ]
    )
    end = T0 + 4 * MIN
    assert queries.series(blue, "RequestsPerMinute", T0, end, aggregation="Total") == [
        (T0, 10),
        (T0 + MIN, 0),
        (T0 + 2 * MIN, 5),
        (T0 + 3 * MIN, 0),
    ]
    assert [v for _, v in queries.series(blue, "ReadyReplicas", T0, end)] == [2, None, 3, None]
    p99 = queries.series(blue, "RequestLatency_P99", T0, end)
    assert p99[0][1] == pytest.approx(10 + 15 * 0.99) and p99[1][1] is None
    # Coarser: the spans add up, and a per-minute average divides by the span's minutes.
    five = queries.series(blue, "RequestsPerMinute", T0, end, timedelta(minutes=5), "Total")
    assert five == [(T0, 15)]
    average = queries.series(blue, "RequestsPerMinute", T0, end, timedelta(minutes=5))
    assert average == [(T0, 15 / 4)]  # the span is cut at the end: 4 minutes
    assert queries.series(blue, "ReadyReplicas", T0, end, timedelta(minutes=5)) == [(T0, 3)]


def test_a_shadow_deployments_mirrored_requests_and_agreement_by_minute(blue, green):
    DeploymentMinute.objects.bulk_create(
        [
            row(blue, T0, ok=10),
            row(green, T0, mirrored=10, mirror_agreed=9),
            row(green, T0 + MIN, mirror_dropped=2),  # none compared: no agreement
            row(green, T0 + 2 * MIN, mirrored=4, mirror_agreed=1),
        ]
    )
    end = T0 + 3 * MIN
    assert queries.series(green, "MirroredRequestsPerMinute", T0, end) == [
        (T0, 10),
        (T0 + MIN, 0),
        (T0 + 2 * MIN, 4),
    ]
    assert queries.series(green, "ShadowAgreement", T0, end) == [
        (T0, pytest.approx(90.0)),
        (T0 + MIN, None),
        (T0 + 2 * MIN, pytest.approx(25.0)),
    ]
    # Over a coarser span: agreed over mirrored of the whole span, not a mean of minutes.
    assert queries.series(green, "ShadowAgreement", T0, end, timedelta(minutes=5)) == [
        (T0, pytest.approx(100 * 10 / 14))
    ]
    assert queries.series(blue, "ShadowAgreement", T0, end, timedelta(minutes=5)) == [(T0, None)]
    both = queries.series([blue, green], "MirroredRequestsPerMinute", T0, end, 3 * MIN, "Average")
    assert both == [(T0, pytest.approx(14 / 3))]

    summary = queries.endpoint_summaries([blue.endpoint], T0, end)[blue.endpoint_id]
    shadow, live = summary.deployments["green"], summary.deployments["blue"]
    assert (shadow.mirrored, shadow.mirror_dropped) == (14, 2)
    assert shadow.agreement == pytest.approx(10 / 14)
    assert shadow.requests == 0  # the copies are not the deployment's own requests
    assert (live.mirrored, live.agreement, live.mirror_dropped) == (0, None, 0)
    assert (summary.mirrored, summary.agreement) == (14, pytest.approx(10 / 14))


def test_endpoint_summaries_add_deployments_up_in_two_queries(endpoint, blue, green, client):
    other = OnlineEndpoint.objects.create(
        workspace=endpoint.workspace, name="ep2", location="local", auth_mode="Key"
    )
    DeploymentMinute.objects.bulk_create(
        [row(blue, T0 + i * MIN, ok=90, server_errors=10, ready_replicas=2) for i in range(60)]
        + [row(green, T0 + i * MIN, ok=10, queue_ms=50.0, queue_count=10) for i in range(30)]
        + [row(blue, T0 - MIN, ok=1000)]  # before the window
    )
    with CaptureQueriesContext(connection) as captured:
        summaries = queries.endpoint_summaries([endpoint, other], T0, T0 + 60 * MIN)
    assert len(captured) == 2
    summary = summaries[endpoint.pk]
    assert summary.requests == 60 * 100 + 30 * 10
    assert summary.requests_per_second == pytest.approx(6300 / 3600)
    assert summary.server_error_rate == pytest.approx(600 / 6300)
    assert summary.client_error_rate == 0
    assert summary.p99_ms == pytest.approx(10 + 15 * 0.99)
    assert summary.mean_queue_ms == pytest.approx(5.0)
    assert summary.replicas == 2  # green was never sampled
    assert summary.deployments["blue"].server_error_rate == pytest.approx(0.1)
    assert summary.deployments["green"].requests == 300
    assert summary.deployments["green"].replicas is None
    idle = summaries[other.pk]
    assert (idle.requests, idle.server_error_rate, idle.p50_ms, idle.deployments) == (
        0,
        None,
        None,
        {},
    )


def test_the_overview_of_200_endpoints_over_an_hour_is_quick(endpoint):
    workspace = Workspace.objects.get()
    endpoints = OnlineEndpoint.objects.bulk_create(
        OnlineEndpoint(
            workspace=workspace,
            name=f"many{i}",
            location="local",
            auth_mode="Key",
            scoring_host=f"many{i}.ws1",
        )
        for i in range(200)
    )
    deployments = OnlineDeployment.objects.bulk_create(
        OnlineDeployment(endpoint=e, name="blue", location="local", endpoint_compute_type="Managed")
        for e in endpoints
    )
    DeploymentMinute.objects.bulk_create(
        row(d, T0 + i * MIN, ok=50, server_errors=1, ready_replicas=1)
        for d in deployments
        for i in range(60)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE metrics_deploymentminute")
    queries.endpoint_summaries(endpoints, T0, T0 + 60 * MIN)  # warm
    started = time.perf_counter()
    summaries = queries.endpoint_summaries(endpoints, T0, T0 + 60 * MIN)
    elapsed = time.perf_counter() - started
    assert all(s.requests == 60 * 51 for s in summaries.values())
    assert elapsed < 0.2, f"{elapsed * 1000:.0f} ms"


#
# Collecting the routers' reports
#
def report(minute: int, deployment_id: str, ok: int, **gauges) -> Report:
    counts = {"requests:2xx": ok, "latency:4": ok, "queueCount": ok}
    return Report(minute, deployment_id, counts, {"latencySum": 0.02 * ok}, gauges)


@pytest.fixture
def reports():
    """The routers' reporter, on the Redis the control plane reads; emptied after."""
    from django.conf import settings

    reporter = MinuteReporter(None, settings.WEIR_ROUTING_REDIS_URL)
    yield reporter
    for key in reporter.client.scan_iter("weir:metrics:*"):
        reporter.client.delete(key)


def test_the_collector_moves_complete_minutes_once_and_adds_late_reports(blue, reports):
    from workers.tasks.metrics import collect

    now = time.time()
    minute = minute_of(now) - 120
    current = minute_of(now)
    blue_id = str(blue.pk)
    # Two processes' reports of one minute, one of the current minute, one of a deployment
    # Weir does not know (another installation's router on the same Redis).
    reports.write([report(minute, blue_id, 3, readyReplicasMax=2)])
    reports.write([report(minute, blue_id, 4, readyReplicasMax=1, queuedMax=5)])
    mirrors = {"mirrored": 5, "mirrorAgreed": 4, "mirrorDropped": 1}
    reports.write([Report(minute, blue_id, mirrors, {}, {})])
    reports.write([report(current, blue_id, 7), report(minute, "not-ours", 9)])

    assert collect(routing.client(), now) == 1
    stored = DeploymentMinute.objects.get()
    assert stored.minute == datetime.fromtimestamp(minute, UTC)
    assert (stored.requests_2xx, stored.queue_count, stored.ready_replicas, stored.queued) == (
        7,
        7,
        2,
        5,
    )
    assert stored.latency_buckets == histogram(b4=7)
    assert stored.latency_seconds == pytest.approx(0.14)
    assert (stored.mirrored, stored.mirror_agreed, stored.mirror_dropped) == (5, 4, 1)
    # Taken from Redis: running again adds nothing; the current minute waits.
    assert not routing.client().exists(metrics_key(minute, blue_id), index_key(minute))
    assert collect(routing.client(), now) == 0
    assert routing.client().exists(metrics_key(current, blue_id))

    # A report that comes late is added to the row, gauges raised, never lowered.
    reports.write([report(minute, blue_id, 2, readyReplicasMax=3, queuedMax=1)])
    reports.write([Report(minute, blue_id, {"mirrored": 1, "mirrorAgreed": 1}, {}, {})])
    assert collect(routing.client(), now) == 1
    stored.refresh_from_db()
    assert (stored.requests_2xx, stored.ready_replicas, stored.queued) == (9, 3, 5)
    assert (stored.mirrored, stored.mirror_agreed, stored.mirror_dropped) == (6, 5, 1)
    assert stored.latency_buckets == histogram(b4=9)


def test_the_collect_task_prunes_minutes_past_the_retention(blue, settings):
    from workers.tasks.metrics import collect_metrics

    settings.WEIR_METRICS_RETENTION_DAYS = 2
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    DeploymentMinute.objects.bulk_create(
        [row(blue, now - timedelta(days=3), ok=1), row(blue, now - timedelta(days=1), ok=1)]
    )
    collect_metrics()
    assert list(DeploymentMinute.objects.values_list("minute", flat=True)) == [
        now - timedelta(days=1)
    ]


def test_reports_put_back_when_they_cannot_be_stored_are_collected_later(blue, reports):
    from workers.tasks.metrics import put_back

    minute = minute_of(time.time()) - 120
    fields = {b"requests:2xx": b"3", b"latencySum": b"0.06", b"readyReplicasMax": b"2"}
    put_back(routing.client(), [(minute, str(blue.pk))], [fields])
    put_back(routing.client(), [(minute, str(blue.pk))], [fields])
    key = metrics_key(minute, str(blue.pk))
    parsed = store.parse(minute, str(blue.pk), routing.client().hgetall(key))
    assert parsed.values == {"requests_2xx": 6, "latency_seconds": pytest.approx(0.12)}
    assert parsed.gauges == {"ready_replicas": 2}


#
# The API
#
def metrics(client, query: str, path: str = METRICS):
    return client.get(f"{path}?api-version=2023-10-01&{query}")


def test_the_metrics_api_answers_in_azure_monitors_shape(client, blue, green):
    DeploymentMinute.objects.bulk_create(
        [
            row(blue, T0, ok=3, server_errors=1, ready_replicas=2),
            row(green, T0 + MIN, ok=2),
            row(blue, T0 + MIN, ok=5, requests_4xx=1, requests_429=1),
        ]
    )
    span = "timespan=2026-12-01T10:00:00Z/2026-12-01T10:03:00Z"
    response = metrics(client, f"metricnames=RequestsPerMinute&aggregation=Total&{span}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["timespan"] == "2026-12-01T10:00:00Z/2026-12-01T10:03:00Z"
    assert (body["cost"], body["interval"], body["resourceregion"]) == (0, "PT1M", "local")
    assert body["namespace"] == "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
    (metric,) = body["value"]
    assert metric["id"] == f"{EP}/providers/Microsoft.Insights/metrics/RequestsPerMinute"
    assert metric["type"] == "Microsoft.Insights/metrics"
    assert metric["name"]["value"] == "RequestsPerMinute"
    assert (metric["unit"], metric["errorCode"]) == ("Count", "Success")
    assert metric["timeseries"] == [
        {
            "metadatavalues": [],
            "data": [
                {"timeStamp": "2026-12-01T10:00:00Z", "total": 4},
                {"timeStamp": "2026-12-01T10:01:00Z", "total": 8},
                {"timeStamp": "2026-12-01T10:02:00Z", "total": 0},
            ],
        }
    ]

    # Split by deployment and status class; a filter of values splits by them.
    split = metrics(
        client,
        f"metricnames=RequestsPerMinute&aggregation=Total&{span}&interval=PT5M"
        "&$filter=deployment eq '*' and statusCodeClass eq '2xx' or statusCodeClass eq '5xx'",
    ).json()["value"][0]["timeseries"]
    assert [
        ([m["value"] for m in s["metadatavalues"]], s["data"][0].get("total")) for s in split
    ] == [(["blue", "2xx"], 8), (["blue", "5xx"], 1), (["green", "2xx"], 2), (["green", "5xx"], 0)]
    assert split[0]["metadatavalues"][0]["name"] == {
        "value": "deployment",
        "localizedValue": "deployment",
    }

    # A deployment's own: latency percentiles and gauges, several aggregations.
    path = f"{EP}/deployments/blue/providers/microsoft.insights/METRICS"
    latency = metrics(
        client,
        f"metricnames=RequestLatency_P50,ReadyReplicas,ThrottledRequestsPerMinute"
        f"&aggregation=Average,Maximum,Total&{span}&interval=FULL",
        path,
    ).json()
    assert latency["namespace"].endswith("/onlineEndpoints/deployments")
    p50, replicas, throttled = (m["timeseries"][0]["data"] for m in latency["value"])
    assert p50 == [{"timeStamp": "2026-12-01T10:00:00Z", "average": pytest.approx(17.5)}]
    assert replicas == [{"timeStamp": "2026-12-01T10:00:00Z", "average": 2, "maximum": 2}]
    assert throttled[0]["total"] == 1

    # A shadow deployment's mirrored requests and their agreement with the live answers.
    DeploymentMinute.objects.filter(deployment=green).update(mirrored=8, mirror_agreed=6)
    path = f"{EP}/deployments/green/providers/Microsoft.Insights/metrics"
    shadow = metrics(
        client,
        f"metricnames=MirroredRequestsPerMinute,ShadowAgreement&{span}&interval=PT1M",
        path,
    ).json()["value"]
    mirrored, agreement = shadow
    assert (mirrored["unit"], agreement["unit"]) == ("Count", "Percent")
    assert agreement["name"] == {
        "value": "ShadowAgreement",
        "localizedValue": "Shadow Agreement (Weir)",
    }
    assert [p.get("total") for p in mirrored["timeseries"][0]["data"]] == [0, 8, 0]
    assert agreement["timeseries"][0]["data"] == [
        {"timeStamp": "2026-12-01T10:00:00Z"},  # nothing mirrored: no value
        {"timeStamp": "2026-12-01T10:01:00Z", "average": pytest.approx(75.0)},
        {"timeStamp": "2026-12-01T10:02:00Z"},
    ]
    # On the endpoint, split by deployment: blue mirrored nothing.
    split = metrics(
        client, f"metricnames=ShadowAgreement&{span}&interval=FULL&$filter=deployment eq '*'"
    ).json()["value"][0]["timeseries"]
    assert [(s["metadatavalues"][0]["value"], s["data"][0].get("average")) for s in split] == [
        ("blue", None),
        ("green", pytest.approx(75.0)),
    ]

    definitions = client.get(
        f"{EP}/providers/Microsoft.Insights/metricDefinitions?api-version=2023-10-01"
    ).json()["value"]
    by_name = {d["name"]["value"]: d for d in definitions}
    assert by_name["RequestsPerMinute"]["dimensions"] == [
        {"value": "deployment", "localizedValue": "deployment"},
        {"value": "statusCodeClass", "localizedValue": "statusCodeClass"},
    ]
    assert by_name["RequestLatency_P99"]["unit"] == "MilliSeconds"
    assert by_name["ShadowAgreement"]["unit"] == "Percent"
    assert by_name["ShadowAgreement"]["supportedAggregationTypes"] == ["Average"]
    assert by_name["MirroredRequestsPerMinute"]["primaryAggregationType"] == "Total"
    assert "Weir" in by_name["MirroredRequestsPerMinute"]["displayDescription"]
    assert {"timeGrain": "PT1M", "retention": "P14D"} in by_name["QueueTimeMs"][
        "metricAvailabilities"
    ]


@pytest.mark.parametrize(
    ("query", "target"),
    [
        ("metricnames=RequestsPerHour", "metricnames"),
        ("metricnames=RequestsPerMinute&aggregation=Median", "aggregation"),
        ("interval=PT2M", "interval"),
        ("timespan=yesterday/today", "timespan"),
        ("timespan=2026-12-01T10:00:00Z/2026-11-30T10:00:00Z", "timespan"),
        ("timespan=2026-10-01T00:00:00Z/2026-12-01T00:00:00Z", "timespan"),
        ("timespan=P31D", "timespan"),
        ("timespan=2026-13-01T00:00:00Z/PT1H", "timespan"),
        ("timespan=a/b/c", "timespan"),
        ("$filter=region eq 'west'", "$filter"),
        ("$filter=deployment eq blue", "$filter"),
        ("$filter=deployment eq 'a' or statusCodeClass eq '2xx'", "$filter"),
        ("$filter=statusCodeClass eq '6xx'", "$filter"),
    ],
)
def test_bad_parameters_are_400_naming_them(client, blue, query, target):
    assert_arm_error(metrics(client, query), 400, "ValidationError", target)


def test_metrics_of_an_unknown_endpoint_or_deployment_are_404(client, blue):
    missing = f"{WS}/onlineEndpoints/nope/providers/Microsoft.Insights/metrics"
    assert_arm_error(metrics(client, "", missing), 404, "ResourceNotFound")
    missing = f"{EP}/deployments/nope/providers/Microsoft.Insights/metrics"
    assert_arm_error(metrics(client, "", missing), 404, "ResourceNotFound")


def test_a_reader_of_the_endpoint_reads_its_metrics_and_nobody_else_does(client, blue):
    bob, principal = caller("bob")
    denied(metrics(bob, ""), principal, "Microsoft.Insights/metrics/read", EP)
    assign(client, EP, roles.READER, principal.object_id)
    assert metrics(bob, "").status_code == 200
    deployment_metrics = f"{EP}/deployments/blue/providers/Microsoft.Insights/metrics"
    assert metrics(bob, "", deployment_metrics).status_code == 200
