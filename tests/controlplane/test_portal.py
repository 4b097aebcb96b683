"""The portal's pages in process: what each role sees and may do, the traffic editor's
preview and refusals, CSRF on its forms, and that its changes are the API's (audited, with
the same errors). The browser tests (tests/system/test_portal_browser.py) drive the same pages
in Chromium against the whole stack."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from controlplane.access.models import PrincipalType
from controlplane.access.principals import principal_of
from controlplane.access.roles import OWNER, READER
from controlplane.audit.models import AuditRecord
from controlplane.core.models import OnlineEndpoint
from tests.conftest import WS, put_deployment, put_endpoint, run_operations, url
from tests.controlplane.test_rbac import assign


@pytest.fixture
def two_deployments(client, workspace, model_version):
    assert put_endpoint(client).status_code == 201
    for name in ("blue", "green"):
        response = put_deployment(client, name=name, model=model_version["id"], capacity=1)
        assert response.status_code == 201, response.content
    run_operations()
    body = {"location": "local", "properties": {"authMode": "Key", "traffic": {"blue": 100}}}
    assert client.put(url("/onlineEndpoints/ep1"), body, format="json").status_code == 200
    run_operations()
    return OnlineEndpoint.objects.get(name="ep1")


def browser_for(user, csrf=True) -> Client:
    """A signed-in browser's session (CSRF checked, as a browser's is; over plain HTTP, where
    Django does not also compare the Referer: the browser tests go through HTTPS)."""
    browser = Client(enforce_csrf_checks=csrf)
    browser.force_login(user)
    return browser


def csrf_of(browser: Client, path: str) -> str:
    page = browser.get(path)
    assert page.status_code == 200, page.content
    return re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page.content)[1].decode()


def post(browser: Client, path: str, data: dict, origin_page: str):
    token = csrf_of(browser, origin_page)
    return browser.post(path, data, HTTP_X_CSRFTOKEN=token)


def person(client, role, scope="/", name=None):
    """A person (who signs in; service principals cannot) holding ``role`` at ``scope``."""
    user = get_user_model().objects.create(username=name or f"person-{uuid.uuid4().hex[:6]}")
    assign(client, scope, role, principal_of(user, PrincipalType.USER).object_id)
    return user


def reader(client, scope=WS):
    return person(client, READER, scope)


@pytest.fixture
def admin(client):
    return person(client, OWNER, name="admin")


def test_the_overview_lists_what_the_viewer_may_read(client, admin, two_deployments):
    page = browser_for(admin).get("/portal/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'data-endpoint="ep1"' in text
    assert "blue 100%" in text
    # Someone with no role sees no endpoint, and the endpoint page is not found for them.
    stranger = get_user_model().objects.create(username="stranger")
    principal_of(stranger, PrincipalType.USER)
    page = browser_for(stranger).get("/portal/")
    assert 'data-endpoint="ep1"' not in page.content.decode()
    assert browser_for(stranger).get(f"/portal/endpoints/{two_deployments.pk}").status_code == 404


def test_signing_in_is_required(two_deployments):
    page = Client().get("/portal/")
    assert page.status_code == 302
    assert page["Location"].startswith("/auth/login?next=/portal/")


def test_a_reader_sees_no_buttons_and_a_forged_post_is_refused(client, two_deployments):
    user = reader(client)
    browser = browser_for(user)
    page = browser.get(f"/portal/endpoints/{two_deployments.pk}")
    assert page.status_code == 200
    text = page.content.decode()
    for control in ("Change traffic", "Reveal keys", "Regenerate primary", "Apply</button>"):
        assert control not in text, control
    # A POST the page never offered, with a valid CSRF token: the API refuses it, by role.
    keys_before = (two_deployments.primary_key, two_deployments.secondary_key)
    answer = post(
        browser,
        f"/portal/endpoints/{two_deployments.pk}/keys",
        {"regenerate": "Primary"},
        f"/portal/endpoints/{two_deployments.pk}",
    )
    assert answer.status_code == 200
    assert "403 AuthorizationFailed" in answer.content.decode()
    two_deployments.refresh_from_db()
    assert (two_deployments.primary_key, two_deployments.secondary_key) == keys_before
    changed = {"step": "apply", "traffic-blue": "0", "traffic-green": "100"}
    answer = post(browser, f"/portal/endpoints/{two_deployments.pk}/traffic", changed, "/portal/")
    assert "403 AuthorizationFailed" in answer.content.decode()
    two_deployments.refresh_from_db()
    assert two_deployments.traffic == {"blue": 100}


def test_a_post_without_the_csrf_token_is_refused(admin, two_deployments):
    browser = browser_for(admin)
    answer = browser.post(f"/portal/endpoints/{two_deployments.pk}/keys", {"regenerate": "Primary"})
    assert answer.status_code == 403
    before = two_deployments.primary_key
    two_deployments.refresh_from_db()
    assert two_deployments.primary_key == before


def test_traffic_preview_names_what_the_api_would_refuse_and_changes_nothing(
    admin, two_deployments
):
    browser = browser_for(admin)
    path = f"/portal/endpoints/{two_deployments.pk}/traffic"
    origin = f"/portal/endpoints/{two_deployments.pk}"
    for form, message in (
        ({"traffic-blue": "90", "traffic-green": "20"}, "must sum to 0 or 100, not 110"),
        ({"traffic-blue": "100", "mirror-green": "60"}, "at most"),
        ({"traffic-blue": "ninety", "traffic-green": "10"}, "Must be an integer"),
    ):
        answer = post(browser, path, {"step": "apply", **form}, origin)
        text = answer.content.decode()
        assert "The API would refuse this change" in text, text
        assert message in text, text
        two_deployments.refresh_from_db()
        assert two_deployments.traffic == {"blue": 100}
        assert two_deployments.mirror_traffic == {}
    preview = post(browser, path, {"traffic-blue": "90", "traffic-green": "10"}, origin)
    text = preview.content.decode()
    assert "The API accepts this change" in text
    assert 'name="step" value="apply"' in text
    two_deployments.refresh_from_db()
    assert two_deployments.traffic == {"blue": 100}


def test_applied_traffic_is_the_apis_change_and_is_audited(admin, two_deployments):
    browser = browser_for(admin)
    answer = post(
        browser,
        f"/portal/endpoints/{two_deployments.pk}/traffic",
        {"step": "apply", "traffic-blue": "90", "traffic-green": "10", "mirror-green": "0"},
        f"/portal/endpoints/{two_deployments.pk}",
    )
    assert 'data-testid="applied"' in answer.content.decode(), answer.content
    two_deployments.refresh_from_db()
    assert two_deployments.traffic == {"blue": 90, "green": 10}
    record = AuditRecord.objects.filter(
        action="Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write"
    ).latest("time")
    assert record.principal_name == "admin"
    assert record.resource_id.endswith("/onlineEndpoints/ep1")
    assert record.changes["properties.traffic.green"] == {"before": None, "after": 10}


def test_keys_are_revealed_and_regenerated_through_the_api(admin, two_deployments):
    browser = browser_for(admin)
    path = f"/portal/endpoints/{two_deployments.pk}/keys"
    origin = f"/portal/endpoints/{two_deployments.pk}"
    shown = post(browser, path, {}, origin).content.decode()
    assert two_deployments.primary_key in shown
    old = two_deployments.primary_key
    answer = post(browser, path, {"regenerate": "Primary"}, origin)
    assert 'data-testid="regenerated"' in answer.content.decode()
    two_deployments.refresh_from_db()
    assert two_deployments.primary_key != old
    assert AuditRecord.objects.filter(action__iendswith="regenerateKeys/action").exists()


def test_scale_changes_go_through_the_api_and_bad_numbers_are_named(admin, two_deployments):
    browser = browser_for(admin)
    path = f"/portal/endpoints/{two_deployments.pk}/deployments/blue/scale"
    origin = f"/portal/endpoints/{two_deployments.pk}"
    answer = post(browser, path, {"capacity": "two"}, origin)
    assert "capacity must be a whole number" in answer.content.decode()
    answer = post(browser, path, {"capacity": "99"}, origin)
    assert "capacity" in answer.content.decode() and "400" in answer.content.decode()
    answer = post(browser, path, {"capacity": "2"}, origin)
    assert "accepted" in answer.content.decode()
    assert two_deployments.deployments.get(name="blue").instance_count == 2


@pytest.mark.parametrize(
    "page",
    [
        "/portal/",
        "/portal/operations",
        "/portal/batch",
        "/portal/assets",
        "/portal/people",
        "/portal/audit",
    ],
)
def test_every_page_renders(admin, two_deployments, page):
    answer = browser_for(admin).get(page)
    assert answer.status_code == 200, answer.content
    assert b"<title>" in answer.content


def test_the_audit_page_shows_changes_with_their_diffs(admin, two_deployments):
    answer = browser_for(admin).get("/portal/audit", {"action": "*/onlineEndpoints/write"})
    text = answer.content.decode()
    assert "properties.traffic.blue" in text
    assert "alice" in text  # the fixture changed traffic through the API


def test_people_page_creates_a_token_shown_once_and_revokes_it(admin, two_deployments):
    browser = browser_for(admin)
    owner = "/providers/Weir.Access/users/admin/tokens"
    form = {"change": "token", "owner": owner, "label": "ci"}
    answer = post(browser, "/portal/people", form, "/portal/people")
    text = answer.content.decode()
    secret = re.search(r'data-testid="new-token">.*?<code>([^<]+)</code>', text, re.S)[1]
    assert len(secret) > 20
    again = browser.get("/portal/people").content.decode()
    assert secret not in again
    token_id = re.search(r'name="token" value="([^"]+/tokens/\d+)"', again)[1]
    post(browser, "/portal/people", {"change": "revoke", "token": token_id}, "/portal/people")
    assert "Revoked" in browser.get("/portal/people").content.decode()


def test_an_expired_session_sends_an_htmx_poll_to_the_sign_in_page(two_deployments):
    poll = Client().get("/portal/", HTTP_HX_REQUEST="true")
    assert poll.status_code == 200
    assert poll["HX-Redirect"] == "/auth/login?next=/portal/"


def test_a_mirrored_deployment_shows_its_shadow_agreement(admin, two_deployments):
    from django.utils import timezone

    from contracts.metrics import LATENCY_BUCKETS
    from controlplane.metrics.models import DeploymentMinute

    green = two_deployments.deployments.get(name="green")
    minute = (timezone.now() - timezone.timedelta(minutes=5)).replace(second=0, microsecond=0)
    DeploymentMinute.objects.create(
        deployment=green,
        minute=minute,
        latency_buckets=[0] * (len(LATENCY_BUCKETS) + 1),
        mirrored=20,
        mirror_agreed=15,
    )
    page = browser_for(admin).get(f"/portal/endpoints/{two_deployments.pk}").content.decode()
    row = re.search(r'<tr data-deployment="green">.*?</tr>', page, re.S)[0]
    assert "75% of 20" in row
    chart = re.search(r'<script id="chart-agreement" type="application/json">(.*?)</script>', page)
    drawn = json.loads(chart[1])
    green_values = next(s["values"] for s in drawn["series"] if s["label"] == "green")
    assert drawn["title"] == "Shadow agreement (mirrored requests)"
    assert green_values[drawn["x"].index(int(minute.timestamp()))] == 75.0
    assert len(drawn["x"]) == len(green_values) == 61  # an hour of minutes, and this one


def test_rollouts_show_their_gates_and_decisions_and_obey_roles(client, admin, two_deployments):
    from controlplane.rollout.models import Rollout

    plan = {
        "candidate": "green",
        "gates": {"maxErrorRate": 0.05},
        "steps": [{"traffic": 10, "durationSeconds": 60}, {"traffic": 50, "durationSeconds": 60}],
    }
    path = url("/onlineEndpoints/ep1/rollouts/r1")
    assert client.put(path, {"properties": plan}, format="json").status_code == 201
    gate = {"gate": "maxErrorRate", "value": 0.2, "threshold": 0.05, "passed": False}
    Rollout.objects.filter(name="r1").update(
        status="Running", reading={"gates": [gate], "reason": "2 of 10 requests failed"}
    )
    page_path = f"/portal/endpoints/{two_deployments.pk}"
    text = browser_for(admin).get(page_path).content.decode()
    panel = re.search(r'<div class="panel rollout" data-rollout="r1">.*?</details>', text, re.S)[0]
    assert "step 1 of 2" in panel
    assert "maxErrorRate" in panel and "0.05" in panel and ">fail<" in panel
    assert ">Pause</button>" in panel and ">Abort</button>" in panel
    assert ">Resume</button>" not in panel
    reader_text = browser_for(reader(client)).get(page_path).content.decode()
    assert "step 1 of 2" in reader_text and ">Pause</button>" not in reader_text

    browser = browser_for(admin)
    answer = post(browser, f"{page_path}/rollouts/r1/pause", {}, page_path)
    assert answer.status_code == 200 and "Pause" in answer.content.decode(), answer.content
    assert Rollout.objects.get(name="r1").status == "Paused"
    answer = post(browser, f"{page_path}/rollouts/r1/launch", {}, page_path)
    assert answer.status_code == 404
