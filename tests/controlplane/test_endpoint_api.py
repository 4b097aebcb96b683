"""Online endpoints: LRO shape, validation, traffic rules, keys, token, delete."""

import jwt
import pytest
from django.db import connection
from django.test import override_settings

from controlplane.core.models import OnlineEndpoint
from controlplane.core.services.keys import verify_token
from tests.conftest import assert_arm_error, put_deployment, put_endpoint, run_operations, url
from tests.controlplane.arm_resource import ArmResourceTests


class TestOnlineEndpointResource(ArmResourceTests):
    collection = "/onlineEndpoints"
    resource_type = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
    body = {"location": "local", "properties": {"authMode": "Key"}}
    update = {"location": "local", "properties": {"authMode": "Key", "description": "d"}}
    bad_name = "ab"
    bad_name_target = "endpointName"
    long_running = True

    @pytest.fixture
    def parent(self, workspace):
        return workspace


def poll(client, absolute_url: str):
    return client.get(absolute_url.removeprefix("http://testserver"))


def test_create_answers_201_creating_with_an_operation_to_poll(client, workspace):
    response = put_endpoint(client)
    assert response.status_code == 201
    body = response.json()
    assert body["properties"]["provisioningState"] == "Creating"
    assert body["properties"]["keys"] is None
    assert body["properties"]["scoringUri"].endswith("/score")
    status_url = response["Azure-AsyncOperation"]
    assert status_url.startswith("http://testserver/subscriptions/")
    assert "mfeOperationsStatus" in status_url and "api-version=2024-04-01" in status_url
    operation = poll(client, status_url).json()
    assert operation["status"] == "InProgress" and operation["startTime"]

    run_operations()
    operation = poll(client, status_url).json()
    assert operation["status"] == "Succeeded" and operation["endTime"]
    assert operation["percentComplete"] == 100.0
    got = client.get(url("/onlineEndpoints/ep1")).json()
    assert got["properties"]["provisioningState"] == "Succeeded"


def test_a_changed_put_updates(client, endpoint):
    response = put_endpoint(client, description="new")
    assert response.status_code == 200
    assert response.json()["properties"]["provisioningState"] == "Updating"
    assert "Azure-AsyncOperation" in response
    run_operations()
    got = client.get(url("/onlineEndpoints/ep1")).json()
    assert got["properties"]["description"] == "new"
    assert got["properties"]["provisioningState"] == "Succeeded"


def test_a_put_while_an_operation_runs_is_a_conflict(client, workspace):
    put_endpoint(client)
    response = put_endpoint(client, description="again")
    assert_arm_error(response, 409, "Conflict")


@pytest.mark.parametrize("name", ["ab", "1abc", "a" * 33, "ab--c", "abc-", "ab_c"])
def test_endpoint_names_follow_azure_rules(client, workspace, name):
    assert_arm_error(put_endpoint(client, name=name), 400, "ValidationError", "endpointName")
    assert not OnlineEndpoint.objects.exists()


@pytest.mark.parametrize(
    "properties, target",
    [
        ({"authMode": "Password"}, "properties.authMode"),
        ({"authMode": None}, "properties.authMode"),
        ({"publicNetworkAccess": "Sometimes"}, "properties.publicNetworkAccess"),
        ({"traffic": {"blue": "lots"}}, "properties.traffic.blue"),
        ({"traffic": {"nope": 100}}, "properties.traffic"),
    ],
)
def test_invalid_properties_name_the_field(client, workspace, properties, target):
    assert_arm_error(put_endpoint(client, **properties), 400, "ValidationError", target)
    assert not OnlineEndpoint.objects.exists()


def test_properties_are_required(client, workspace):
    response = client.put(url("/onlineEndpoints/ep1"), {"location": "local"}, format="json")
    assert_arm_error(response, 400, "ValidationError", "properties")


@pytest.fixture
def two_deployments(client, endpoint, model_version):
    for name in ("blue", "green"):
        assert put_deployment(client, name=name, model="azureml:sklearn:1").status_code == 201
    run_operations()


@pytest.mark.parametrize(
    "traffic, mirror, target, message",
    [
        ({"blue": 50}, {}, "properties.traffic", "sum to 0 or 100"),
        ({"blue": 101}, {}, "properties.traffic.blue", ""),
        ({"blue": -1}, {}, "properties.traffic.blue", ""),
        ({"blue": 90, "red": 10}, {}, "properties.traffic", "red"),
        ({"blue": 100}, {"green": 51}, "properties.mirrorTraffic", "50%"),
        ({"blue": 100}, {"green": 10, "blue": 10}, "properties.mirrorTraffic", "one"),
        ({"blue": 100}, {"blue": 10}, "properties.mirrorTraffic", "live"),
        ({"blue": 100}, {"red": 10}, "properties.mirrorTraffic", "red"),
    ],
)
def test_traffic_rules(client, two_deployments, traffic, mirror, target, message):
    response = put_endpoint(client, traffic=traffic, mirrorTraffic=mirror)
    error = assert_arm_error(response, 400, "ValidationError", target)
    assert message in error["message"]
    assert OnlineEndpoint.objects.get().traffic == {}


def test_valid_traffic_and_mirror_are_kept(client, two_deployments):
    response = put_endpoint(client, traffic={"BLUE": 90, "green": 10}, mirrorTraffic={})
    assert response.status_code == 200, response.content
    run_operations()
    response = put_endpoint(client, traffic={"blue": 100}, mirrorTraffic={"green": 20})
    assert response.status_code == 200, response.content
    props = response.json()["properties"]
    assert props["traffic"] == {"blue": 100} and props["mirrorTraffic"] == {"green": 20}


def test_a_mirror_comparison_is_read_back_and_reaches_the_routing_entry_when_applied(
    client, two_deployments
):
    from controlplane.core.services import routing

    assert client.get(url("/onlineEndpoints/ep1")).json()["properties"]["mirrorComparison"] is None
    comparison = {"tolerance": 0.01, "path": "$.predictions[*]"}
    response = put_endpoint(
        client, traffic={"blue": 100}, mirrorTraffic={"green": 20}, mirrorComparison=comparison
    )
    assert response.status_code == 200, response.content
    endpoint = OnlineEndpoint.objects.get()
    assert routing.entry(endpoint).mirror_comparison is None  # not before it is applied
    run_operations()
    got = client.get(url("/onlineEndpoints/ep1")).json()["properties"]
    assert got["mirrorComparison"] == comparison
    rule = routing.entry(OnlineEndpoint.objects.get()).mirror_comparison
    assert (rule.tolerance, rule.path) == (0.01, "$.predictions[*]")
    # A PUT without the field (a client that does not know it) keeps it ...
    assert put_endpoint(client, traffic={"blue": 100}).status_code == 200
    run_operations()
    assert OnlineEndpoint.objects.get().mirror_comparison == comparison
    # ... the tolerance alone defaults the path, and null (or the default rule) clears it.
    put_endpoint(client, traffic={"blue": 100}, mirrorComparison={"tolerance": 0})
    got = client.get(url("/onlineEndpoints/ep1")).json()["properties"]["mirrorComparison"]
    assert got == {"tolerance": 0.0, "path": None}
    run_operations()
    for cleared in (None, {"tolerance": 1e-6}):
        put_endpoint(client, traffic={"blue": 100}, mirrorComparison=cleared)
        run_operations()
        assert OnlineEndpoint.objects.get().mirror_comparison is None


@pytest.mark.parametrize(
    "comparison, target",
    [
        ({"tolerance": -0.1}, "properties.mirrorComparison.tolerance"),
        ({"tolerance": "0.1"}, "properties.mirrorComparison.tolerance"),
        ({"tolerance": True}, "properties.mirrorComparison.tolerance"),
        ({"path": "predictions"}, "properties.mirrorComparison.path"),
        ({"path": "$..predictions"}, "properties.mirrorComparison.path"),
        ({"path": "$[?(@.a)]"}, "properties.mirrorComparison.path"),
        ({"path": 3}, "properties.mirrorComparison.path"),
        ({"rule": "exact"}, "properties.mirrorComparison.rule"),
        ("exact", "properties.mirrorComparison"),
    ],
)
def test_a_bad_mirror_comparison_is_400_naming_the_field(client, endpoint, comparison, target):
    response = put_endpoint(client, mirrorComparison=comparison)
    assert_arm_error(response, 400, "ValidationError", target)
    assert OnlineEndpoint.objects.get().mirror_comparison is None


def test_patch_replaces_tags(client, endpoint):
    put_endpoint(client)
    response = client.patch(url("/onlineEndpoints/ep1"), {"tags": {"team": "a"}}, format="json")
    assert response.status_code == 200
    assert response.json()["tags"] == {"team": "a"}
    response = client.patch(url("/onlineEndpoints/ep1"), {"tags": {"owner": "b"}}, format="json")
    assert response.json()["tags"] == {"owner": "b"}


def test_patch_refuses_an_identity_without_a_type(client, endpoint):
    before = client.get(url("/onlineEndpoints/ep1")).json()
    response = client.patch(url("/onlineEndpoints/ep1"), {"identity": {}}, format="json")
    assert_arm_error(response, 400, "ValidationError", "identity.type")
    assert client.get(url("/onlineEndpoints/ep1")).json() == before


def test_list_pages_with_next_links_that_work(client, workspace):
    for index in range(5):
        assert put_endpoint(client, name=f"ep{index}").status_code == 201
    seen, next_url = [], url("/onlineEndpoints", "count=2")
    while next_url:
        page = client.get(next_url.removeprefix("http://testserver")).json()
        assert len(page["value"]) <= 2
        seen += [e["name"] for e in page["value"]]
        next_url = page["nextLink"]
        assert next_url is None or next_url.startswith("http://testserver/")
    assert seen == [f"ep{index}" for index in range(5)]


def test_list_rejects_a_bad_page_size(client, workspace):
    assert_arm_error(
        client.get(url("/onlineEndpoints", "count=x")), 400, "ValidationError", "count"
    )


def test_list_filters_by_tag(client, workspace):
    put_endpoint(client, name="tagged")
    client.patch(url("/onlineEndpoints/tagged"), {"tags": {"env": "prod"}}, format="json")
    put_endpoint(client, name="plain")
    names = [
        e["name"] for e in client.get(url("/onlineEndpoints", "tags=env=prod")).json()["value"]
    ]
    assert names == ["tagged"]


def test_delete_is_asynchronous_and_removes_deployments(client, two_deployments):
    response = client.delete(url("/onlineEndpoints/ep1"))
    assert response.status_code == 202
    assert int(response["Retry-After"]) >= 1
    assert poll(client, response["Location"]).status_code == 202
    got = client.get(url("/onlineEndpoints/ep1/deployments/blue")).json()
    assert got["properties"]["provisioningState"] == "Deleting"
    assert (
        client.get(url("/onlineEndpoints/ep1")).json()["properties"]["provisioningState"]
        == "Deleting"
    )

    run_operations()
    assert poll(client, response["Location"]).status_code == 204
    assert poll(client, response["Azure-AsyncOperation"]).json()["status"] == "Succeeded"
    assert client.get(url("/onlineEndpoints/ep1")).status_code == 404
    assert client.delete(url("/onlineEndpoints/ep1")).status_code == 204


def test_a_repeated_delete_answers_with_the_running_operation(client, endpoint):
    first = client.delete(url("/onlineEndpoints/ep1"))
    second = client.delete(url("/onlineEndpoints/ep1"))
    assert second.status_code == 202
    assert first["Location"] == second["Location"]


def test_list_and_regenerate_keys(client, endpoint):
    keys = client.post(url("/onlineEndpoints/ep1/listKeys")).json()
    assert (
        keys["primaryKey"] and keys["secondaryKey"] and keys["primaryKey"] != keys["secondaryKey"]
    )
    assert (
        client.post(
            url("/onlineEndpoints/ep1/regenerateKeys"), {"keyType": "Primary"}, format="json"
        ).status_code
        == 200
    )
    after = client.post(url("/onlineEndpoints/ep1/listKeys")).json()
    assert after["primaryKey"] != keys["primaryKey"]
    assert after["secondaryKey"] == keys["secondaryKey"]
    body = {"keyType": "Secondary", "keyValue": "my-own-secondary-key"}
    client.post(url("/onlineEndpoints/ep1/regenerateKeys"), body, format="json")
    assert (
        client.post(url("/onlineEndpoints/ep1/listKeys")).json()["secondaryKey"]
        == "my-own-secondary-key"
    )
    # Azure's SDK regenerates by sending the key it just read: that gives a new key.
    body = {"keyType": "Secondary", "keyValue": "my-own-secondary-key"}
    client.post(url("/onlineEndpoints/ep1/regenerateKeys"), body, format="json")
    regenerated = client.post(url("/onlineEndpoints/ep1/listKeys")).json()["secondaryKey"]
    assert regenerated not in ("my-own-secondary-key", "") and len(regenerated) >= 32


def test_regenerate_keys_validates_key_type(client, endpoint):
    response = client.post(
        url("/onlineEndpoints/ep1/regenerateKeys"), {"keyType": "Tertiary"}, format="json"
    )
    assert_arm_error(response, 400, "ValidationError", "keyType")


def test_initial_keys_may_be_given_at_create_only(client, workspace):
    keys = {"primaryKey": "first-primary-key", "secondaryKey": "first-secondary-key"}
    assert put_endpoint(client, keys=keys).json()["properties"]["keys"] is None
    listed = client.post(url("/onlineEndpoints/ep1/listKeys")).json()
    assert listed == keys


def test_keys_are_encrypted_at_rest(client, endpoint):
    keys = client.post(url("/onlineEndpoints/ep1/listKeys")).json()
    with connection.cursor() as cursor:
        cursor.execute("SELECT primary_key, secondary_key FROM weir_onlineendpoint")
        stored = cursor.fetchone()
    for plaintext, ciphertext in zip(keys.values(), stored, strict=True):
        assert plaintext not in ciphertext
        assert ciphertext.startswith("gAAAA")  # a Fernet token


def test_token_is_only_for_aml_token_endpoints(client, endpoint):
    response = client.post(url("/onlineEndpoints/ep1/token"))
    assert_arm_error(response, 400, "BadArgument", "authMode")


def test_token_is_signed_and_expires(client, workspace):
    put_endpoint(client, name="tok", authMode="AMLToken")
    with override_settings(WEIR_AML_TOKEN_LIFETIME=3600):
        token = client.post(url("/onlineEndpoints/tok/token")).json()
    assert token["tokenType"] == "Bearer"
    assert token["expiryTimeUtc"] > token["refreshAfterTimeUtc"]
    endpoint = OnlineEndpoint.objects.get(name="tok")
    claims = verify_token(token["accessToken"], endpoint)
    assert claims["exp"] == token["expiryTimeUtc"]
    tampered = token["accessToken"][:-4] + (
        "AAAA" if not token["accessToken"].endswith("AAAA") else "BBBB"
    )
    with pytest.raises(jwt.InvalidTokenError):
        verify_token(tampered, endpoint)
    with override_settings(WEIR_AML_TOKEN_LIFETIME=-10):
        expired = client.post(url("/onlineEndpoints/tok/token")).json()
    with pytest.raises(jwt.ExpiredSignatureError):
        verify_token(expired["accessToken"], endpoint)


def test_an_unknown_operation_is_404(client, workspace):
    from tests.conftest import SUB

    provider = f"/subscriptions/{SUB}/providers/Microsoft.MachineLearningServices"
    path = f"{provider}/locations/local/mfeOperationsStatus/nope"
    assert_arm_error(client.get(url(path)), 404, "ResourceNotFound")


def test_scoring_hosts_are_unique_across_subscriptions(client, endpoint):
    provider = "/subscriptions/other-sub/resourceGroups/rg9/providers"
    other = f"{provider}/Microsoft.MachineLearningServices/workspaces/ws1"
    assert client.put(url(other), {"location": "local"}, format="json").status_code == 201
    body = {"location": "local", "properties": {"authMode": "Key"}}
    response = client.put(url(f"{other}/onlineEndpoints/EP1"), body, format="json")
    error = assert_arm_error(response, 409, "Conflict", "endpointName")
    assert "ep1.ws1.localhost" in error["message"]
    assert client.put(url(f"{other}/onlineEndpoints/ep2"), body, format="json").status_code == 201


def test_a_new_signing_key_reaches_the_router_table_with_the_first_token(
    transactional_db, client, workspace
):
    """Committed for real (no surrounding transaction), as in the server."""
    from controlplane.core.models import SigningKey
    from controlplane.core.services import routing
    from dataplane.router.table import SIGNING_KEYS

    put_endpoint(client, name="tok", authMode="AMLToken")
    assert client.post(url("/onlineEndpoints/tok/token")).status_code == 200
    key = SigningKey.objects.get()
    assert routing.client().hget(SIGNING_KEYS, key.kid).decode() == key.public_key_pem


def test_scoring_uris_in_the_configured_style(client, endpoint):
    from django.test import override_settings

    host_style = client.get(url("/onlineEndpoints/ep1")).json()["properties"]
    assert host_style["scoringUri"] == "http://ep1.ws1.localhost:8080/score"
    with override_settings(WEIR_SCORING_URI_STYLE="path"):
        path_style = client.get(url("/onlineEndpoints/ep1")).json()["properties"]
    assert path_style["scoringUri"] == "http://localhost:8080/endpoints/ws1/ep1/score"
    assert path_style["swaggerUri"] == "http://localhost:8080/endpoints/ws1/ep1/swagger.json"
