"""Signing in, and the portal, in a real headless Chromium against the running stack."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.system.portal_browser import make_person, new_page, screenshot, session_of, submit_login


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
        page.wait_for_url("**/auth/session")
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
