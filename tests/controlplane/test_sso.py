"""Single sign-on against a real OpenID Connect provider: django-oauth-toolkit with OIDC on
(tests/oidc_provider), started on a free loopback port with its own Postgres database and an
RSA key made here. A browser-less client walks the authorization code flow: Weir's login
redirects to the provider, the person signs in at the provider's form, the provider sends
them back with a code, Weir exchanges it and verifies the ID token, and the session it
starts can call the API. Weir runs in this process (Django's test client, over HTTPS)."""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db import connection
from django.test import Client

from controlplane.access.models import Group, RoleAssignment
from controlplane.access.principals import identities
from controlplane.access.roles import READER
from tests.conftest import API

ROOT = Path(__file__).resolve().parents[2]
CALLBACK = "https://testserver/auth/oidc/callback"
PROVIDER_SETTINGS = "tests.oidc_provider.settings"
ADA = {
    "username": "ada",
    "password": secrets.token_urlsafe(16),
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "groups": ["ml-engineers", "payroll"],
}
GRACE = {"username": "grace", "password": secrets.token_urlsafe(16), "groups": []}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pg_url(name: str) -> str:
    """A URL of database ``name`` on the server Weir's tests use, with their credentials."""
    db = connection.settings_dict
    credentials = db["USER"] or ""
    if db["PASSWORD"]:
        credentials += f":{db['PASSWORD']}"
    at = f"{credentials}@" if credentials else ""
    host = db["HOST"] or "localhost"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{at}{host}{port}/{name}"


def recreate_database(name: str, drop_only: bool = False) -> None:
    db = connection.settings_dict
    params = {
        "dbname": "postgres",
        "user": db["USER"] or None,
        "password": db["PASSWORD"] or None,
        "host": db["HOST"] or "localhost",
        "port": db["PORT"] or None,
    }
    with psycopg.connect(**{k: v for k, v in params.items() if v}, autocommit=True) as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            pg.execute(f'CREATE DATABASE "{name}"')


class Provider:
    def __init__(self, issuer: str, client_id: str, client_secret: str):
        self.issuer = issuer
        self.client_id = client_id
        self.client_secret = client_secret


@pytest.fixture(scope="module")
def provider(django_db_setup, django_db_blocker, tmp_path_factory):
    """The provider process, its database made for this run (named after Weir's test
    database, so concurrent runs on other databases never share it)."""
    with django_db_blocker.unblock():
        database = f"{connection.settings_dict['NAME']}_oidc_provider"
        recreate_database(database)
    port = free_port()
    issuer = f"http://127.0.0.1:{port}/o"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": PROVIDER_SETTINGS,
        "OIDC_PROVIDER_SECRET_KEY": secrets.token_urlsafe(32),
        "OIDC_PROVIDER_DATABASE_URL": pg_url(database),
        "OIDC_PROVIDER_ISSUER": issuer,
        "OIDC_PROVIDER_RSA_KEY": key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    }
    client_id, client_secret = "weir-" + secrets.token_hex(4), secrets.token_urlsafe(32)
    spec = {
        "client": {
            "client_id": client_id,
            "client_secret": client_secret,
            "redirect_uri": CALLBACK,
        },
        "people": [dict(ADA), dict(GRACE)],
    }
    subprocess.run(
        [sys.executable, "-m", "tests.oidc_provider.setup_provider"],
        input=json.dumps(spec),
        text=True,
        cwd=ROOT,
        env=environment,
        check=True,
        timeout=300,
    )
    log = (tmp_path_factory.mktemp("oidc-provider") / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "django", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(f"{issuer}/.well-known/openid-configuration", timeout=2)
                break
            except requests.ConnectionError:
                assert process.poll() is None, f"the provider exited; see {log.name}"
                assert time.monotonic() < deadline, f"the provider did not start; see {log.name}"
                time.sleep(0.2)
        yield Provider(issuer, client_id, client_secret)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.close()
        with django_db_blocker.unblock():
            recreate_database(database, drop_only=True)


@pytest.fixture
def sso(provider, settings, db):
    settings.WEIR_OIDC_ISSUER = provider.issuer
    settings.WEIR_OIDC_CLIENT_ID = provider.client_id
    settings.WEIR_OIDC_CLIENT_SECRET = provider.client_secret
    settings.WEIR_OIDC_GROUPS_CLAIM = "groups"
    return provider


def sign_in_at_provider(browser: requests.Session, authorize_url: str, person: dict) -> str:
    """Sign in at the provider as a browser would, from its authorization URL to the redirect
    back to Weir; returns that redirect (the code and the state)."""
    response = browser.get(authorize_url, allow_redirects=True)
    assert response.status_code == 200 and "/accounts/login/" in response.url, response.text
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.text).group(1)
    response = browser.post(
        response.url,
        data={
            "username": person["username"],
            "password": person["password"],
            "csrfmiddlewaretoken": csrf,
            "next": parse_qs(urlsplit(response.url).query)["next"][0],
        },
        headers={"Referer": response.url},
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text
    # Back to the authorization endpoint, which (consent pre-approved) redirects to Weir.
    response = browser.get(
        requests.compat.urljoin(response.url, response.headers["Location"]),
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text
    return response.headers["Location"]


def sign_in(person: dict, next_page: str = "/auth/session") -> tuple[Client, object]:
    """The whole code flow for ``person``; returns Weir's client (holding the session) and
    Weir's answer to the provider's redirect."""
    web = Client(enforce_csrf_checks=True)
    start = web.get("/auth/oidc/login", {"next": next_page}, secure=True)
    assert start.status_code == 302, start.content
    back = sign_in_at_provider(requests.Session(), start["Location"], person)
    assert back.startswith(CALLBACK + "?")
    answer = web.get(back.removeprefix("https://testserver"), secure=True)
    return web, answer


def test_the_code_flow_signs_a_person_in_and_the_groups_claim_grants_a_role(sso):
    ml_team = Group.objects.create(name="ML team", external_id="ml-engineers")
    # Groups only map claim values an administrator created; "payroll" maps nothing.
    RoleAssignment.objects.create(
        scope="/",
        scope_key="/",
        role_definition_id=READER,
        principal_id=ml_team.object_id,
        principal_type="Group",
    )
    signed_in = []
    user_logged_in.connect(handler := lambda sender, user, **kw: signed_in.append(user))
    try:
        web, answer = sign_in(ADA)
    finally:
        user_logged_in.disconnect(handler)

    # What the authorization request asked for: the code flow with PKCE, state and nonce.
    assert answer.status_code == 302, answer.content
    assert answer["Location"] == "/auth/session"
    ada = get_user_model().objects.get(principal__external_id__startswith=sso.issuer + " ")
    assert signed_in == [ada]
    assert ada.principal.kind == "User"
    assert ada.principal.display_name == "Ada Lovelace"
    assert ada.username == "ada" and ada.email == "ada@example.com"
    assert not ada.has_usable_password()
    assert list(Group.objects.filter(members=ada)) == [ml_team]
    assert ml_team.object_id in identities(ada)
    assert ada.principal.object_id in identities(ada)

    session = web.get("/auth/session", secure=True).json()
    assert session["signedIn"] and session["principalId"] == str(ada.principal.object_id)
    assert session["groups"] == [{"name": "ML team", "principalId": str(ml_team.object_id)}]

    # The session calls the API (the role assignment is what authorizes it).
    me = web.get(f"/providers/Weir.Access/users/ada?{API}", secure=True)
    assert me.status_code == 200, me.content
    assert me.json()["properties"]["signIn"] == "OpenIdConnect"
    assert me.json()["properties"]["principalId"] == str(ada.principal.object_id)


def test_the_authorization_request_uses_pkce_state_and_nonce(sso):
    web = Client()
    start = web.get("/auth/oidc/login", secure=True)
    query = parse_qs(urlsplit(start["Location"]).query)
    assert start["Location"].startswith(sso.issuer + "/authorize/")
    assert query["response_type"] == ["code"]
    assert query["client_id"] == [sso.client_id]
    assert query["redirect_uri"] == [CALLBACK]
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"] and query["nonce"] and query["code_challenge"]
    assert set(query["scope"][0].split()) >= {"openid", "profile", "email"}


def test_signing_in_again_follows_the_claim(sso):
    ml_team = Group.objects.create(name="ML team", external_id="ml-engineers")
    gone = Group.objects.create(name="Old team", external_id="disbanded")
    by_hand = Group.objects.create(name="On call")  # no externalId: not the claim's to manage
    web, answer = sign_in(ADA)
    ada = get_user_model().objects.get(username="ada")
    gone.members.add(ada)
    by_hand.members.add(ada)

    web, answer = sign_in(ADA)
    assert answer.status_code == 302
    assert get_user_model().objects.filter(username="ada").count() == 1
    assert set(Group.objects.filter(members=ada)) == {ml_team, by_hand}


def test_a_person_without_mapped_groups_gets_none(sso):
    Group.objects.create(name="ML team", external_id="ml-engineers")
    web, answer = sign_in(GRACE)
    assert answer.status_code == 302
    grace = get_user_model().objects.get(username="grace")
    assert not Group.objects.filter(members=grace).exists()
    assert identities(grace) == {grace.principal.object_id}
    # Signed in, but with no role: the same call the group's role allows is refused.
    refused = web.get(f"/providers/Weir.Access/users/grace?{API}", secure=True)
    assert refused.status_code == 403, refused.content
    assert refused.json()["error"]["code"] == "AuthorizationFailed"


def test_the_identity_provider_does_not_take_over_a_local_account(sso, client):
    local = client.put(f"/providers/Weir.Access/users/ada?{API}", {}, format="json")
    assert local.status_code == 201
    web, answer = sign_in(ADA)
    assert answer.status_code == 302
    person = get_user_model().objects.get(principal__external_id__isnull=False)
    assert person.username.startswith("ada-")
    session = web.get("/auth/session", secure=True).json()
    assert session["principalId"] == str(person.principal.object_id)
    assert session["principalId"] != local.json()["properties"]["principalId"]


def test_a_forged_state_is_refused(sso):
    failed = []
    user_login_failed.connect(handler := lambda sender, credentials, **kw: failed.append(1))
    try:
        web = Client()
        start = web.get("/auth/oidc/login", secure=True)
        back = sign_in_at_provider(requests.Session(), start["Location"], ADA)
        forged = back.replace("state=", "state=x")
        answer = web.get(forged.removeprefix("https://testserver"), secure=True)
    finally:
        user_login_failed.disconnect(handler)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "AuthenticationFailed"
    assert failed == [1]
    assert not get_user_model().objects.filter(username="ada").exists()
    assert not web.get("/auth/session", secure=True).json()["signedIn"]


def test_a_code_from_another_session_is_refused(sso):
    """The code and state are bound to the session that started the sign-in (login CSRF)."""
    start = Client().get("/auth/oidc/login", secure=True)
    back = sign_in_at_provider(requests.Session(), start["Location"], ADA)
    answer = Client().get(back.removeprefix("https://testserver"), secure=True)
    assert answer.status_code == 401


def test_a_wrong_client_secret_is_refused(sso, settings):
    settings.WEIR_OIDC_CLIENT_SECRET = "not-" + sso.client_secret
    web, answer = sign_in(ADA)
    assert answer.status_code == 401
    assert not get_user_model().objects.filter(username="ada").exists()


def test_without_an_issuer_single_sign_on_is_off(db, settings):
    settings.WEIR_OIDC_ISSUER = ""
    assert Client().get("/auth/oidc/login", secure=True).status_code == 404
    page = Client().get("/auth/login", secure=True)
    assert page.status_code == 200 and b"/auth/oidc/login" not in page.content


def test_the_login_page_offers_single_sign_on(sso):
    page = Client().get("/auth/login", secure=True)
    assert b"/auth/oidc/login" in page.content


def test_an_unreachable_provider_is_a_503(db, settings):
    settings.WEIR_OIDC_ISSUER = f"http://127.0.0.1:{free_port()}/o"
    settings.WEIR_OIDC_CLIENT_ID = "weir"
    answer = Client().get("/auth/oidc/login", secure=True)
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "IdentityProviderUnavailable"
