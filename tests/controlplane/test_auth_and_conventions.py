"""Authentication, api-version, request ids, case-insensitive paths and error bodies."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from controlplane.core.models import ApiToken
from tests.conftest import WS, assert_arm_error, url


@pytest.mark.django_db
def test_it_refuses_anonymous_requests():
    response = APIClient().get(url(""))
    assert_arm_error(response, 401, "AuthenticationFailed")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_it_refuses_an_unknown_token():
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Bearer weir_not-a-real-token")
    assert_arm_error(api.get(url("")), 401, "AuthenticationFailed")


def test_it_refuses_expired_and_revoked_tokens(alice):
    expired, expired_plain = ApiToken.issue(alice, "old", days=1)
    expired.expires_at = timezone.now() - timezone.timedelta(seconds=1)
    expired.save()
    revoked, revoked_plain = ApiToken.issue(alice, "revoked", days=1)
    revoked.revoked_at = timezone.now()
    revoked.save()
    for token in (expired_plain, revoked_plain):
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        assert_arm_error(api.get(url("")), 401, "AuthenticationFailed")


def test_tokens_are_stored_only_as_digests(alice):
    token, plaintext = ApiToken.issue(alice, "t", days=1)
    token.refresh_from_db()
    assert plaintext not in (token.token_digest, token.prefix)
    assert len(token.token_digest) == 64


def test_tokens_are_jwts_with_the_claims_azures_sdks_read(alice):
    """azureml-core decodes the bearer token it holds and reads exp, tid and oid; the server
    itself trusts only the token's digest."""
    import jwt
    from django.conf import settings

    from controlplane.core.models.apitoken import _signing_key

    token, plaintext = ApiToken.issue(alice, "t", days=2)
    assert plaintext.count(".") == 2
    claims = jwt.decode(plaintext, _signing_key(), algorithms=["HS256"], audience="weir-api")
    assert claims["tid"] == settings.WEIR_TENANT_ID
    assert claims["upn"] == claims["name"] == "alice"
    assert abs(claims["exp"] - token.expires_at.timestamp()) < 1
    assert ApiToken.issue(alice, "u", days=1)[1] != plaintext
    # The same claims, signed with the same key, but not a token Weir issued: refused.
    forged = jwt.encode({**claims, "jti": "guessed"}, _signing_key(), algorithm="HS256")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert_arm_error(api.get(url("")), 401, "AuthenticationFailed")
    # One made without an expiry still carries exp, far ahead, as the SDKs expect.
    _, forever = ApiToken.issue(alice, "v", days=None)
    exp = jwt.decode(forever, options={"verify_signature": False})["exp"]
    assert exp > timezone.now().timestamp() + 50 * 365 * 24 * 3600


def test_it_requires_api_version(client, workspace):
    response = client.get(WS)
    assert_arm_error(response, 400, "MissingApiVersionParameter", "api-version")


@pytest.mark.parametrize(
    "version",
    # azureml-core (SDK v1) sends the first three.
    ["2018-03-01-preview", "2020-02-02", "2022-05-01", "2023-04-01-preview", "2025-12-01"],
)
def test_it_accepts_the_versions_clients_send(client, workspace, version):
    assert client.get(f"{WS}?api-version={version}").status_code == 200


def test_it_rejects_a_malformed_api_version(client, workspace):
    response = client.get(f"{WS}?api-version=latest")
    assert_arm_error(response, 400, "InvalidApiVersionParameter", "api-version")


def test_every_response_has_a_request_id(client, workspace):
    ok = client.get(url(""))
    missing = client.get(url("/onlineEndpoints/nope"))
    assert ok["x-ms-request-id"] and missing["x-ms-request-id"]
    assert ok["x-ms-request-id"] != missing["x-ms-request-id"]


def test_paths_and_names_are_case_insensitive(client, workspace):
    upper = WS.upper().replace("/SUBSCRIPTIONS/", "/SUBSCRIPTIONS/")
    response = client.get(f"{upper}?api-version=2024-04-01")
    assert response.status_code == 200, response.content
    assert response.json()["name"] == "ws1"
    lower = url("/onlineEndpoints").lower()
    assert client.get(lower).status_code == 200


def test_unknown_paths_get_an_arm_404(client):
    response = client.get("/subscriptions/x/nothing/here?api-version=2024-04-01")
    assert_arm_error(response, 404, "NotFound")


def test_malformed_json_is_a_400(client, workspace):
    response = client.put(
        url("/onlineEndpoints/ep1"), data="{not json", content_type="application/json"
    )
    assert_arm_error(response, 400, "InvalidRequestContent")
