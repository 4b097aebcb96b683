"""Signing in, and the portal, in a real headless Chromium against the running stack."""

from __future__ import annotations

import collections
import os
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.system.portal_browser import make_person, new_page, screenshot, session_of, submit_login
from tests.system.test_router import eventually, score


def test_sign_in_in_a_real_browser(stack, browser, tmp_path):
    person = make_person(stack)
    page = new_page(stack, browser)
    try:
        page.goto("/auth/login")
        expect(page).to_have_title("Sign in to Weir")
        shot = screenshot(page, tmp_path / "login.png")
        assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

        # A wrong password: the form again, with the error, and no session.
        submit_login(page, person.name, "not the password")
        expect(page.get_by_role("alert")).to_contain_text("did not match")
        expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        assert "/auth/login" in page.url
        assert session_of(page)["signedIn"] is False

        submit_login(page, person.name, person.password)
        page.wait_for_url("**/portal/")  # where people land with no page to go back to
        session = session_of(page)
        assert session["signedIn"] is True
        assert session["name"] == person.name
        assert session["principalId"] == person.principal_id
    finally:
        page.context.close()


def test_the_portal_opens_for_a_signed_in_reader(stack, signed_in, tmp_path):
    page = signed_in(role="Reader")
    response = page.goto("/portal/")
    if response.status == 404:
        pytest.skip("/portal/ answers 404: the portal is not in this tree yet")
    assert response.ok, response.status
    assert "Weir" in page.title()
    screenshot(page, tmp_path / "portal.png")


# -- the administrator's walk -------------------------------------------------------------------

# The README's screenshots are taken by this test when WEIR_PORTAL_SCREENSHOTS names their
# folder (docs/); otherwise into the test's own temporary folder.
SCREENSHOTS = os.environ.get("WEIR_PORTAL_SCREENSHOTS")


def scored_by(stack, path: str, key: str, count: int) -> collections.Counter:
    """``count`` requests to the endpoint through the router: which deployment answered."""
    uri = stack.call("GET", path).json()["properties"]["scoringUri"]
    served = collections.Counter()
    for _ in range(count):
        response = score(stack, uri, key)
        assert response.status_code == 200, response.text
        served[response.json()["who"]] += 1
    return served


def keys_of(stack, path: str) -> dict:
    return stack.call("POST", f"{path}/listKeys").json()


def test_an_administrator_watches_and_changes_an_endpoint(
    stack, routed_endpoint, workspace, signed_in, tmp_path
):
    endpoint = routed_endpoint
    shots = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path
    settled = stack.call(
        "PUT",
        endpoint,
        {"location": "local", "properties": {"authMode": "Key", "traffic": {"blue": 100}}},
    )
    stack.wait_for_status(settled.headers["Azure-AsyncOperation"])
    key = keys_of(stack, endpoint)["primaryKey"]
    # A bounded load: 60 requests, all to blue.
    assert scored_by(stack, endpoint, key, 60) == {"blue": 60}

    page = signed_in(role="Owner", next_url="/portal/")
    page.wait_for_url("**/portal/")
    # Other tests' endpoints are named "routed" too, each in its own workspace.
    workspace_name = workspace.rsplit("/", 1)[-1]
    row = page.locator(f'tr[data-endpoint="routed"][data-workspace="{workspace_name}"]')
    # The routers' counts reach the overview once their minute has ended and been collected.
    deadline = time.monotonic() + 100
    while row.get_by_test_id("count").inner_text() != "60":
        assert time.monotonic() < deadline, row.inner_text()
        page.wait_for_timeout(2000)
        page.reload()
    expect(row).to_contain_text("blue 100%")
    expect(row).to_contain_text("2/2")  # replicas ready of those asked for, both deployments
    screenshot(page, shots / "portal-overview.png")

    row.get_by_role("link", name="routed").click()
    expect(page.get_by_role("heading", name="Change traffic")).to_be_visible()
    expect(page.get_by_test_id("deployments")).to_contain_text("blue")

    # Traffic 100/0 -> 90/10: previewed, accepted, and then obeyed by the router.
    page.get_by_label("traffic for blue").fill("90")
    page.get_by_label("traffic for green").fill("10")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("traffic-preview")).to_contain_text("10%")
    expect(page.locator("#traffic-result")).to_contain_text("The API accepts this change")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("applied")).to_be_visible()

    def applied():
        properties = stack.call("GET", endpoint).json()["properties"]
        wanted = {"blue": 90, "green": 10}
        return properties["provisioningState"] == "Succeeded" and properties["traffic"] == wanted

    assert eventually(applied, timeout=60)
    served = scored_by(stack, endpoint, key, 300)
    # 30 expected on green; 4.5 standard deviations (sqrt(300 * 0.1 * 0.9) = 5.2) either side.
    assert 7 <= served["green"] <= 53, served
    assert served["blue"] + served["green"] == 300

    # A key regenerated in the page: the old one is refused by the router.
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Reveal keys").click()
    expect(page.get_by_test_id("primary-key")).to_have_text(key)
    page.get_by_role("button", name="Regenerate primary").click()
    expect(page.get_by_test_id("regenerated")).to_be_visible()
    uri = stack.call("GET", endpoint).json()["properties"]["scoringUri"]
    assert eventually(lambda: score(stack, uri, key).status_code == 401)
    new_key = keys_of(stack, endpoint)["primaryKey"]
    assert new_key != key
    assert score(stack, uri, new_key).status_code == 200
    page.reload()
    expect(
        page.get_by_test_id("deployments").locator('tr[data-deployment="green"]')
    ).to_contain_text("10%")
    screenshot(page, shots / "portal-endpoint.png")

    # A Reader of the workspace sees the endpoint and no button that changes it, and a forged
    # POST (with a valid CSRF token of the Reader's own session) is refused by the API's check.
    reader = signed_in(role="Reader", scope=workspace, next_url=page.url)
    reader.wait_for_url(page.url)
    expect(reader.get_by_test_id("deployments")).to_contain_text("green")
    for name in ("Preview", "Apply", "Reveal keys", "Regenerate primary", "Send"):
        expect(reader.get_by_role("button", name=name)).to_have_count(0)
    expect(reader.get_by_role("heading", name="Change traffic")).to_have_count(0)
    csrf = next(c["value"] for c in reader.context.cookies() if c["name"] == "csrftoken")
    forged = reader.request.post(
        f"{page.url}/keys",
        form={"regenerate": "Secondary"},
        headers={"X-CSRFToken": csrf, "Referer": page.url, "Origin": stack.base_url},
    )
    assert "403 AuthorizationFailed" in forged.text(), forged.text()
    assert keys_of(stack, endpoint)["primaryKey"] == new_key
    forged = reader.request.post(
        f"{page.url}/keys", form={"regenerate": "Secondary"}, headers={"Referer": page.url}
    )
    assert forged.status == 403  # no CSRF token: refused before any view runs

    # The audit log shows both changes, made by the administrator, with the traffic's diff.
    page.goto("/portal/audit")
    page.get_by_label("Action").fill("*/onlineEndpoints/*")
    page.get_by_role("button", name="Search").click()
    records = page.get_by_test_id("audit-records")
    expect(records).to_contain_text("onlineEndpoints/regenerateKeys/action")
    expect(records).to_contain_text("properties.traffic.green")
    regenerated = records.locator("tr", has_text="regenerateKeys")
    expect(regenerated.filter(has_text=session_of(page)["name"])).to_contain_text("Succeeded")
    # The Reader's forged attempt is there too, refused.
    expect(regenerated.filter(has_text=session_of(reader)["name"])).to_contain_text("Failed")
