"""Weir.Access: service principals, local users, groups and API tokens, as a client sees them;
and local password sign-in, whose session the API accepts."""

from __future__ import annotations

import io
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from controlplane.access import roles, signals
from controlplane.access.models import Group, Principal, RoleAssignment
from controlplane.access.principals import identities
from controlplane.core.models import ApiToken
from tests.conftest import API, assert_arm_error

ACCESS = "/providers/Weir.Access"
STRONG = "correct horse battery staple"


def at(path: str) -> str:
    return f"{ACCESS}{path}?{API}"


@pytest.fixture
def received():
    """The access signals sent during the test, as (name, kwargs)."""
    seen = []
    handlers = {}
    for name in ("token_created", "token_revoked"):

        def handler(sender, _name=name, **kwargs):
            seen.append((_name, kwargs))

        handlers[name] = handler
        getattr(signals, name).connect(handler)
    yield seen
    for name, handler in handlers.items():
        getattr(signals, name).disconnect(handler)


def bearer(token: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def reader_everywhere(name: str, role=roles.READER) -> None:
    """A role at / (Reader: what a principal needs to list principals)."""
    principal = Principal.objects.get(user__username=name)
    RoleAssignment.objects.create(
        scope="/",
        scope_key="/",
        role_definition_id=role,
        principal_id=principal.object_id,
        principal_type=principal.kind,
    )


def new_token(client, owner="robot", collection="servicePrincipals", **properties):
    response = client.post(
        at(f"/{collection}/{owner}/tokens"), {"properties": properties}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


#
# Service principals
#
def test_a_service_principal_is_created_read_listed_and_deleted(client):
    response = client.put(
        at("/servicePrincipals/robot"), {"properties": {"displayName": "CI"}}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"] == f"{ACCESS}/servicePrincipals/robot"
    assert body["name"] == "robot"
    assert body["type"] == "Weir.Access/servicePrincipals"
    assert body["properties"]["principalType"] == "ServicePrincipal"
    assert body["properties"]["displayName"] == "CI"
    object_id = uuid.UUID(body["properties"]["principalId"])
    assert Principal.objects.get(user__username="robot").object_id == object_id

    again = client.put(at("/servicePrincipals/robot"), {}, format="json")
    assert again.status_code == 200
    assert again.json()["properties"]["principalId"] == str(object_id)

    assert client.get(at("/servicePrincipals/robot")).json() == again.json()
    listed = client.get(at("/servicePrincipals")).json()
    assert [sp["name"] for sp in listed["value"]] == ["alice", "robot"]
    assert listed["nextLink"] is None

    assert client.delete(at("/servicePrincipals/robot")).status_code == 200
    assert_arm_error(client.get(at("/servicePrincipals/robot")), 404, "ResourceNotFound")
    assert client.delete(at("/servicePrincipals/robot")).status_code == 204


def test_paths_are_case_insensitive(client):
    assert client.put(at("/servicePrincipals/robot"), {}, format="json").status_code == 201
    response = client.get(f"/PROVIDERS/weir.access/SERVICEPRINCIPALS/robot?{API}")
    assert response.status_code == 200, response.content


def test_people_and_service_principals_share_one_name_space(client):
    assert client.put(at("/servicePrincipals/robot"), {}, format="json").status_code == 201
    assert_arm_error(client.put(at("/users/robot"), {}, format="json"), 409, "Conflict")
    assert_arm_error(client.get(at("/users/robot")), 404, "ResourceNotFound")


@pytest.mark.parametrize(
    "path, body, target",
    [
        ("/servicePrincipals/has%20space", {}, "servicePrincipalName"),
        ("/servicePrincipals/" + "x" * 151, {}, "servicePrincipalName"),
        ("/servicePrincipals/robot", {"properties": {"displayName": "x" * 256}}, None),
        ("/servicePrincipals/robot", {"properties": "CI"}, "properties"),
        ("/users/bob", {"properties": {"email": "not an address"}}, "properties.email"),
        ("/groups/%20lead", {}, "groupName"),
        ("/groups/team", {"properties": {"externalId": ""}}, "properties.externalId"),
        ("/groups/team", {"properties": {"members": "everyone"}}, "properties.members"),
        ("/groups/team", {"properties": {"members": ["nope"]}}, "properties.members[0]"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(client, path, body, target):
    before = (get_user_model().objects.count(), Group.objects.count())
    error = assert_arm_error(client.put(at(path), body, format="json"), 400, "ValidationError")
    if target is not None:
        assert error["target"] == target
    else:
        assert error["target"] == "properties.displayName"
    assert (get_user_model().objects.count(), Group.objects.count()) == before


#
# API tokens
#
def test_a_token_is_shown_once_and_listed_without_its_secret(client, received, alice):
    client.put(at("/servicePrincipals/robot"), {}, format="json")
    made = new_token(client, label="deploys")
    secret = made["properties"]["token"]
    assert made["type"] == "Weir.Access/servicePrincipals/tokens"
    assert made["id"] == f"{ACCESS}/servicePrincipals/robot/tokens/{made['name']}"
    assert made["properties"]["label"] == "deploys"
    assert made["properties"]["state"] == "Active"
    robot = Principal.objects.get(user__username="robot")
    assert made["properties"]["principalId"] == str(robot.object_id)
    expires = timezone.datetime.fromisoformat(made["properties"]["expiresOn"])
    assert timezone.timedelta(days=364) < expires - timezone.now() <= timezone.timedelta(days=365)

    # The secret works (with a role), and is stored only as a digest.
    reader_everywhere("robot")
    assert bearer(secret).get(at("/servicePrincipals")).status_code == 200
    assert not ApiToken.objects.filter(token_digest=secret).exists()

    listed = client.get(at("/servicePrincipals/robot/tokens"))
    assert secret not in listed.content.decode()
    (entry,) = listed.json()["value"]
    assert "token" not in entry["properties"]
    assert entry["name"] == made["name"]
    assert entry["properties"]["prefix"] == made["properties"]["prefix"]
    assert entry["properties"]["lastUsedAt"] is not None
    assert entry["properties"]["revokedAt"] is None
    assert set(entry["properties"]) >= {"createdAt", "expiresOn", "label", "state"}
    one = client.get(at(f"/servicePrincipals/robot/tokens/{made['name']}"))
    assert one.json() == entry

    ((name, sent),) = received
    assert name == "token_created"
    assert sent["principal"] == alice and sent["owner"] == robot.user
    assert sent["token"].pk == int(made["name"]) and sent["request"] is not None


def test_a_revoked_token_is_refused(client, received, alice):
    client.put(at("/servicePrincipals/robot"), {}, format="json")
    made = new_token(client)
    secret, name = made["properties"]["token"], made["name"]
    response = client.post(at(f"/servicePrincipals/robot/tokens/{name}/revoke"))
    assert response.status_code == 200, response.content
    assert response.json()["properties"]["state"] == "Revoked"
    assert response.json()["properties"]["revokedAt"]

    refused = bearer(secret).get(at("/servicePrincipals"))
    assert_arm_error(refused, 401, "AuthenticationFailed")
    assert refused["WWW-Authenticate"].startswith("Bearer")
    listed = client.get(at("/servicePrincipals/robot/tokens")).json()["value"]
    assert [t["properties"]["state"] for t in listed] == ["Revoked"]
    assert [n for n, _ in received] == ["token_created", "token_revoked"]
    assert received[1][1]["principal"] == alice

    # Revoking again changes nothing and announces nothing.
    client.post(at(f"/servicePrincipals/robot/tokens/{name}/revoke"))
    assert len(received) == 2


def test_delete_revokes_a_token(client):
    client.put(at("/servicePrincipals/robot"), {}, format="json")
    made = new_token(client)
    assert client.delete(at(f"/servicePrincipals/robot/tokens/{made['name']}")).status_code == 200
    assert_arm_error(
        bearer(made["properties"]["token"]).get(at("/users")), 401, "AuthenticationFailed"
    )
    assert client.delete(at("/servicePrincipals/robot/tokens/999999")).status_code == 204


def test_a_token_expires(client):
    client.put(at("/servicePrincipals/robot"), {}, format="json")
    soon = timezone.now() + timezone.timedelta(hours=1)
    made = new_token(client, expiresOn=soon.isoformat())
    assert timezone.datetime.fromisoformat(made["properties"]["expiresOn"]) == soon
    secret = made["properties"]["token"]
    reader_everywhere("robot")
    assert bearer(secret).get(at("/users")).status_code == 200

    ApiToken.objects.filter(pk=made["name"]).update(expires_at=timezone.now())
    assert_arm_error(bearer(secret).get(at("/users")), 401, "AuthenticationFailed")
    (entry,) = client.get(at("/servicePrincipals/robot/tokens")).json()["value"]
    assert entry["properties"]["state"] == "Expired"


@pytest.mark.parametrize(
    "properties",
    [
        {"expiresOn": "2001-01-01T00:00:00Z"},
        {"expiresOn": (timezone.now() + timezone.timedelta(days=400)).isoformat()},
        {"expiresOn": "next week"},
        {"label": "x" * 256},
    ],
)
def test_a_bad_token_request_is_a_400_and_makes_none(client, properties):
    client.put(at("/servicePrincipals/robot"), {}, format="json")
    response = client.post(
        at("/servicePrincipals/robot/tokens"), {"properties": properties}, format="json"
    )
    (field,) = properties
    assert_arm_error(response, 400, "ValidationError", f"properties.{field}")
    assert not ApiToken.objects.filter(user__username="robot").exists()


def test_tokens_of_a_missing_principal_are_404(client):
    assert_arm_error(client.get(at("/servicePrincipals/ghost/tokens")), 404, "ResourceNotFound")
    response = client.post(at("/servicePrincipals/ghost/tokens"), {}, format="json")
    assert_arm_error(response, 404, "ResourceNotFound")
    assert_arm_error(client.get(at("/servicePrincipals/alice/tokens/x1")), 404, "ResourceNotFound")


def test_deleting_a_principal_revokes_its_tokens(client, received):
    client.put(at("/servicePrincipals/robot"), {}, format="json")
    secret = new_token(client)["properties"]["token"]
    client.delete(at("/servicePrincipals/robot"))
    assert_arm_error(bearer(secret).get(at("/users")), 401, "AuthenticationFailed")
    assert [n for n, _ in received] == ["token_created", "token_revoked"]


def test_create_api_token_names_the_principal(db, received):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", "ci-bot", "--days", "3", stdout=out, stderr=err)
    secret = out.getvalue().strip()
    principal = Principal.objects.get(user__username="ci-bot")
    assert principal.kind == "ServicePrincipal"
    assert "Owner" in err.getvalue()  # the first principal of the install
    response = bearer(secret).get(at("/servicePrincipals/ci-bot/tokens"))
    assert response.status_code == 200, response.content
    (entry,) = response.json()["value"]
    assert entry["properties"]["principalId"] == str(principal.object_id)
    assert [n for n, _ in received] == ["token_created"]


#
# Groups
#
def test_a_group_holds_principals_and_maps_a_claim(client, alice):
    robot = client.put(at("/servicePrincipals/robot"), {}, format="json").json()
    members = [robot["properties"]["principalId"]]
    body = {"properties": {"externalId": "ml-engineers", "members": members}}
    response = client.put(at("/groups/ML team"), body, format="json")
    assert response.status_code == 201, response.content
    group = response.json()
    assert group["id"] == f"{ACCESS}/groups/ML team"
    assert group["properties"]["principalType"] == "Group"
    assert group["properties"]["externalId"] == "ml-engineers"
    assert group["properties"]["members"] == members
    group_id = uuid.UUID(group["properties"]["principalId"])
    assert group_id in identities(get_user_model().objects.get(username="robot"))
    assert group_id not in identities(alice)

    # A PUT without members leaves them; one with members replaces them.
    kept = client.put(at("/groups/ML team"), {"properties": {"externalId": "ml"}}, format="json")
    assert kept.status_code == 200
    assert kept.json()["properties"]["members"] == members
    cleared = client.put(at("/groups/ML team"), {"properties": {"members": []}}, format="json")
    assert cleared.json()["properties"] == {**cleared.json()["properties"], "members": []}
    assert cleared.json()["properties"]["externalId"] is None
    assert [g["name"] for g in client.get(at("/groups")).json()["value"]] == ["ML team"]

    assert client.delete(at("/groups/ML team")).status_code == 200
    assert_arm_error(client.get(at("/groups/ML team")), 404, "ResourceNotFound")


def test_two_groups_cannot_map_one_claim(client):
    client.put(at("/groups/a"), {"properties": {"externalId": "x"}}, format="json")
    response = client.put(at("/groups/b"), {"properties": {"externalId": "x"}}, format="json")
    assert_arm_error(response, 409, "Conflict", "properties.externalId")
    assert not Group.objects.filter(name="b").exists()


#
# Local users and password sign-in
#
def test_a_local_user_signs_in_and_the_api_takes_the_session(client, db):
    made = client.put(
        at("/users/bob"),
        {"properties": {"displayName": "Bob", "email": "bob@example.com"}},
        format="json",
    )
    assert made.status_code == 201, made.content
    assert made.json()["properties"]["signIn"] == "Password"
    assert made.json()["properties"]["hasPassword"] is False
    weak = client.post(at("/users/bob/setPassword"), {"password": "bob"}, format="json")
    assert_arm_error(weak, 400, "ValidationError", "password")
    done = client.post(at("/users/bob/setPassword"), {"password": STRONG}, format="json")
    assert done.status_code == 200, done.content
    assert done.json()["properties"]["hasPassword"] is True
    assert get_user_model().objects.get(username="bob").password.startswith("pbkdf2_sha256$")
    reader_everywhere("bob", roles.OWNER)

    signed_in = []
    user_logged_in.connect(handler := lambda sender, user, **kw: signed_in.append(user))
    try:
        web = Client(enforce_csrf_checks=True)
        page = web.get("/auth/login", secure=True)
        assert page.status_code == 200
        csrf = page.cookies["csrftoken"].value
        # Without the CSRF token the form is refused.
        refused = web.post(
            "/auth/login",
            {"username": "bob", "password": STRONG},
            secure=True,
            HTTP_REFERER="https://testserver/auth/login",
        )
        assert refused.status_code == 403
        response = web.post(
            "/auth/login",
            {"username": "bob", "password": STRONG, "csrfmiddlewaretoken": csrf},
            secure=True,
            HTTP_REFERER="https://testserver/auth/login",
        )
        assert response.status_code == 302, response.content
    finally:
        user_logged_in.disconnect(handler)
    assert [u.username for u in signed_in] == ["bob"]
    cookie = response.cookies["sessionid"]
    assert cookie["secure"] and cookie["httponly"] and cookie["samesite"] == "Lax"

    session = web.get("/auth/session", secure=True).json()
    assert session["signedIn"] and session["name"] == "bob"
    assert session["principalId"] == made.json()["properties"]["principalId"]

    # Reads need no CSRF token; writes do (DRF's SessionAuthentication).
    assert web.get(at("/users/bob"), secure=True).status_code == 200
    write = web.put(at("/groups/g"), {}, content_type="application/json", secure=True)
    assert_arm_error(write, 403, "AuthorizationFailed")
    write = web.put(
        at("/groups/g"),
        {},
        content_type="application/json",
        secure=True,
        HTTP_X_CSRFTOKEN=session["csrfToken"],
        HTTP_ORIGIN="https://testserver",
    )
    assert write.status_code == 201, write.content

    # Signed out, the session is gone.
    web.post(
        "/auth/logout",
        {"csrfmiddlewaretoken": session["csrfToken"]},
        secure=True,
        HTTP_ORIGIN="https://testserver",
    )
    assert_arm_error(web.get(at("/users/bob"), secure=True), 401, "AuthenticationFailed")


def test_a_wrong_password_and_a_service_principal_are_refused(client, db):
    client.put(at("/users/bob"), {}, format="json")
    client.post(at("/users/bob/setPassword"), {"password": STRONG}, format="json")
    robot = get_user_model().objects.create(username="robot")
    client.put(at("/servicePrincipals/robot"), {}, format="json")
    robot.set_password(STRONG)  # not possible through the API; still no sign-in
    robot.save()
    failed = []
    user_login_failed.connect(
        handler := lambda sender, credentials, **kw: failed.append(credentials)
    )
    try:
        web = Client()
        for name, password in (("bob", "wrong " + STRONG), ("robot", STRONG)):
            response = web.post(
                "/auth/login", {"username": name, "password": password}, secure=True
            )
            assert response.status_code == 200  # the form again, with its error
            assert b"did not match" in response.content
    finally:
        user_login_failed.disconnect(handler)
    assert [c["username"] for c in failed] == ["bob", "robot"]
    assert all(c["password"] != STRONG for c in failed)  # Django masks it
    assert not web.get("/auth/session", secure=True).json()["signedIn"]


def test_a_contributor_may_not_manage_principals_groups_or_tokens(db):
    """Making a token for an Owner, or joining an Owner's group, would be taking its role."""
    from controlplane.access.models import RoleDefinition
    from controlplane.access.roles import CONTRIBUTOR

    (permissions,) = RoleDefinition.objects.get(pk=CONTRIBUTOR).permissions
    assert {"Weir.Access/*/write", "Weir.Access/*/delete", "Weir.Access/*/action"} <= set(
        permissions["notActions"]
    )


def test_a_principal_cannot_delete_itself_or_revoke_the_token_it_uses(client, alice):
    made = new_token(client, owner="alice", collection="servicePrincipals")
    own = bearer(made["properties"]["token"])
    alone = own.delete(at("/servicePrincipals/alice"))
    assert_arm_error(alone, 409, "Conflict", "name")
    itself = own.delete(at(f"/servicePrincipals/alice/tokens/{made['name']}"))
    assert_arm_error(itself, 409, "Conflict", "tokenName")
    # Another token of the same principal may revoke it.
    assert client.delete(at(f"/servicePrincipals/alice/tokens/{made['name']}")).status_code < 300
    assert_arm_error(own.get(at("/servicePrincipals")), 401, "AuthenticationFailed")
