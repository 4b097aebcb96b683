"""A real browser for the portal's tests: Debian's headless Chromium driven by Playwright, and
people signed in through the real password form at /auth/login.

The people are made through the API as an administrator would: a local user
(Weir.Access/users), its password (setPassword) and, when asked, one role assignment
(Microsoft.Authorization/roleAssignments), all with the suite's own token, which is Owner
at "/"."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

# Debian's package, installed by bin/test; Playwright's own browser builds are never fetched.
CHROMIUM = "/usr/bin/chromium"
ACCESS = "/providers/Weir.Access"
AUTHORIZATION = "providers/Microsoft.Authorization"
ROLE_API = "api-version=2022-04-01"
PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Person:
    name: str
    password: str
    principal_id: str


@contextmanager
def launched_browser() -> Iterator[Browser]:
    """Headless Chromium (``--no-sandbox``: the tests run as root), closed on exit."""
    assert Path(CHROMIUM).exists(), "chromium is not installed: bin/test installs it"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            yield browser
        finally:
            browser.close()


def role_definition_id(stack, role: str) -> str:
    """The id of the role definition named ``role`` ("Reader", "AzureML Data Scientist")."""
    response = stack.call(
        "GET",
        f"/{AUTHORIZATION}/roleDefinitions?{ROLE_API}&$filter=roleName eq '{role}'",
    )
    assert response.status_code == 200, response.text
    found = response.json()["value"]
    assert len(found) == 1, f"no role definition is named {role!r}"
    return found[0]["id"]


def assign_role(stack, principal_id: str, role: str, scope: str = "/") -> str:
    """Give the principal ``role`` at ``scope``; returns the assignment's id."""
    prefix = scope.rstrip("/")
    body = {
        "properties": {
            "roleDefinitionId": role_definition_id(stack, role),
            "principalId": principal_id,
        }
    }
    response = stack.call(
        "PUT", f"{prefix}/{AUTHORIZATION}/roleAssignments/{uuid.uuid4()}?{ROLE_API}", body
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def make_person(
    stack,
    name: str | None = None,
    *,
    password: str = PASSWORD,
    role: str | None = None,
    scope: str = "/",
    display_name: str | None = None,
) -> Person:
    """A local user who signs in with ``password``; with ``role``, assigned it at ``scope``."""
    name = name or f"person-{uuid.uuid4().hex[:8]}"
    properties = {"displayName": display_name} if display_name else {}
    made = stack.call("PUT", f"{ACCESS}/users/{name}", {"properties": properties})
    assert made.status_code == 201, made.text
    response = stack.call("POST", f"{ACCESS}/users/{name}/setPassword", {"password": password})
    assert response.status_code == 200, response.text
    person = Person(name, password, made.json()["properties"]["principalId"])
    if role:
        assign_role(stack, person.principal_id, role, scope)
    return person


def new_page(stack, browser: Browser) -> Page:
    """A page in a fresh browser context (no cookies) that accepts the stack's self-signed
    certificate. Closing the page's context (``page.context.close()``) ends it."""
    context = browser.new_context(base_url=stack.base_url, ignore_https_errors=True)
    return context.new_page()


def submit_login(page: Page, name: str, password: str) -> None:
    """Fill in and send the password form at /auth/login, as a person does."""
    if not re.search(r"/auth/login(\?|$)", page.url):
        page.goto("/auth/login")
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def sign_in(stack, browser: Browser, person: Person, next_url: str = "/auth/session") -> Page:
    """A new page signed in as ``person`` through the real form, left at ``next_url``."""
    page = new_page(stack, browser)
    page.goto(f"/auth/login?next={next_url}")
    submit_login(page, person.name, person.password)
    page.wait_for_url(f"**{next_url}")
    expect(page.get_by_role("alert")).to_have_count(0)
    return page


def session_of(page: Page) -> dict:
    """What /auth/session says about the page's browser context (its cookies)."""
    response = page.context.request.get("/auth/session")
    assert response.ok, response.text()
    return response.json()


def screenshot(page: Page, path: str | Path) -> Path:
    """Save the whole page (not just the viewport) as a PNG at ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path
