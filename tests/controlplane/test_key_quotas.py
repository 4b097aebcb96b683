"""Scoring quotas by credential (keyQuotas), their usage (keyUsage), and regenerating a
key with an overlap window: what the API answers and what the routing entry carries."""

import json
import time

import pytest

from contracts.routing import QuotaRoute, usage_key
from controlplane.core.models import OnlineEndpoint
from controlplane.core.services import routing
from tests.conftest import assert_arm_error, url

QUOTAS = url("/onlineEndpoints/ep1/keyQuotas")
USAGE = url("/onlineEndpoints/ep1/keyUsage")
NONE = {"primaryKey": None, "secondaryKey": None, "amlToken": None}


def put(client, body):
    return client.put(QUOTAS, body, format="json")


def test_quotas_are_set_read_back_and_carried_in_the_routing_entry(client, endpoint):
    assert client.get(QUOTAS).json() == NONE
    body = {
        "primaryKey": {"requestsPerSecond": 5, "burst": 5},
        "secondaryKey": {"maxConcurrentRequests": 2},
        "amlToken": {"requestsPerSecond": 2.5},
    }
    response = put(client, body)
    assert response.status_code == 200, response.content
    expected = {
        "primaryKey": {"requestsPerSecond": 5.0, "burst": 5, "maxConcurrentRequests": None},
        "secondaryKey": {"requestsPerSecond": None, "burst": None, "maxConcurrentRequests": 2},
        # Without a burst: one second's worth, rounded up.
        "amlToken": {"requestsPerSecond": 2.5, "burst": 3, "maxConcurrentRequests": None},
    }
    assert response.json() == expected
    assert client.get(QUOTAS).json() == expected

    entry = routing.entry(OnlineEndpoint.objects.get(name="ep1"))
    assert entry.quotas["primaryKey"] == QuotaRoute(5.0, 5, None)
    assert entry.quotas["secondaryKey"] == QuotaRoute(None, None, 2)

    # A PUT replaces them all; an empty body lifts every limit.
    assert put(client, {"secondaryKey": {"maxConcurrentRequests": 1}}).json()["primaryKey"] is None
    assert put(client, {}).json() == NONE
    assert routing.entry(OnlineEndpoint.objects.get(name="ep1")).quotas == {}


@pytest.mark.parametrize(
    "body, target",
    [
        ({"primaryKey": {"requestsPerSecond": 0}}, "primaryKey.requestsPerSecond"),
        ({"primaryKey": {"requestsPerSecond": -1}}, "primaryKey.requestsPerSecond"),
        ({"primaryKey": {"requestsPerSecond": "5"}}, "primaryKey.requestsPerSecond"),
        ({"primaryKey": {"requestsPerSecond": True}}, "primaryKey.requestsPerSecond"),
        ({"primaryKey": {"requestsPerSecond": 1e7}}, "primaryKey.requestsPerSecond"),
        ({"primaryKey": {"requestsPerSecond": 5, "burst": 0}}, "primaryKey.burst"),
        ({"primaryKey": {"requestsPerSecond": 5, "burst": 2.5}}, "primaryKey.burst"),
        ({"primaryKey": {"burst": 5}}, "primaryKey.burst"),
        ({"secondaryKey": {"maxConcurrentRequests": 0}}, "secondaryKey.maxConcurrentRequests"),
        ({"amlToken": {"maxConcurrentRequests": "1"}}, "amlToken.maxConcurrentRequests"),
        ({"amlToken": {"requestPerSecond": 5}}, "amlToken.requestPerSecond"),
        ({"tertiaryKey": {"requestsPerSecond": 5}}, "tertiaryKey"),
        ({"primaryKey": 5}, "primaryKey"),
    ],
)
def test_bad_quotas_are_refused_naming_the_field_and_change_nothing(client, endpoint, body, target):
    before = put(client, {"primaryKey": {"requestsPerSecond": 1}}).json()
    etag = OnlineEndpoint.objects.get(name="ep1").etag
    assert_arm_error(put(client, body), 400, "ValidationError", target)
    assert client.get(QUOTAS).json() == before
    assert OnlineEndpoint.objects.get(name="ep1").etag == etag


def test_quotas_of_an_unknown_endpoint_are_404(client, workspace):
    response = client.get(url("/onlineEndpoints/nope/keyQuotas"))
    assert response.status_code == 404


def test_a_key_regenerated_with_an_overlap_stays_valid_until_the_window_ends(client, endpoint):
    old = client.post(url("/onlineEndpoints/ep1/listKeys")).json()["primaryKey"]
    body = {"keyType": "Primary", "overlapSeconds": 300}
    response = client.post(url("/onlineEndpoints/ep1/regenerateKeys"), body, format="json")
    assert response.status_code == 200
    new = client.post(url("/onlineEndpoints/ep1/listKeys")).json()["primaryKey"]
    assert new != old

    entry = routing.entry(OnlineEndpoint.objects.get(name="ep1"))
    assert entry.key_digests[0] == routing.key_digest(new)
    (retired,) = entry.retired_keys
    assert retired.digest == routing.key_digest(old) and retired.credential == "primaryKey"
    assert 295 < retired.expires_at - time.time() <= 300

    # Without an overlap the replaced key is gone at once; the earlier window stays.
    body = {"keyType": "Secondary"}
    client.post(url("/onlineEndpoints/ep1/regenerateKeys"), body, format="json")
    assert routing.entry(OnlineEndpoint.objects.get(name="ep1")).retired_keys == (retired,)

    # An ended window is no longer published.
    OnlineEndpoint.objects.filter(name="ep1").update(
        retired_keys=[{**retired.to_wire(), "expiresAt": time.time() - 1}]
    )
    assert routing.entry(OnlineEndpoint.objects.get(name="ep1")).retired_keys == ()


@pytest.mark.parametrize("overlap", [-1, 7 * 24 * 3600 + 1, "60", 1.5, True])
def test_bad_overlaps_are_refused_and_the_key_is_kept(client, endpoint, overlap):
    keys = client.post(url("/onlineEndpoints/ep1/listKeys")).json()
    body = {"keyType": "Primary", "overlapSeconds": overlap}
    response = client.post(url("/onlineEndpoints/ep1/regenerateKeys"), body, format="json")
    assert_arm_error(response, 400, "ValidationError", "overlapSeconds")
    assert client.post(url("/onlineEndpoints/ep1/listKeys")).json() == keys


@pytest.fixture
def reports(endpoint):
    key = usage_key("ws1", "ep1")
    routing.client().delete(key)
    yield lambda fields: routing.client().hset(
        key, mapping={name: json.dumps(report) for name, report in fields.items()}
    )
    routing.client().delete(key)


def test_usage_sums_the_routers_fresh_reports(client, endpoint, reports):
    put(client, {"primaryKey": {"requestsPerSecond": 5, "burst": 5}})
    now = time.time()

    def used(requests, throttled, in_flight, tokens, at=now):
        return {
            "requestsLastMinute": requests,
            "throttledLastMinute": throttled,
            "inFlight": in_flight,
            "availableTokens": tokens,
            "at": at,
        }

    reports(
        {
            "host:1": {"primaryKey": used(5, 3, 0, 1), "secondaryKey": used(2, 0, 1, None)},
            "host:2": {"primaryKey": used(4, 1, 1, 0)},
            "host:3": {"primaryKey": used(100, 100, 9, 5, at=now - 60)},  # a process gone
        }
    )
    body = client.get(USAGE).json()
    assert body == {
        "primaryKey": {
            "requestsLastMinute": 9,
            "throttledLastMinute": 4,
            "inFlight": 1,
            "availableTokens": 0,
        },
        "secondaryKey": {
            "requestsLastMinute": 2,
            "throttledLastMinute": 0,
            "inFlight": 1,
            "availableTokens": None,
        },
        "amlToken": {
            "requestsLastMinute": 0,
            "throttledLastMinute": 0,
            "inFlight": 0,
            "availableTokens": None,
        },
        "reportingProcesses": 2,
    }


def test_usage_without_reports_is_zero_with_a_full_bucket(client, endpoint, reports):
    put(client, {"primaryKey": {"requestsPerSecond": 5, "burst": 7}})
    body = client.get(USAGE).json()
    assert body["reportingProcesses"] == 0
    assert body["primaryKey"] == {
        "requestsLastMinute": 0,
        "throttledLastMinute": 0,
        "inFlight": 0,
        "availableTokens": 7,
    }
