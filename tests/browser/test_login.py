"""Logging in through the real form in a real Chromium, against the real server."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.browser

LANDING = {"admin": "/admin", "researcher": "/studies", "rater": "/rate"}


@pytest.mark.parametrize("role", ["admin", "researcher", "rater"])
def test_each_role_lands_on_its_page_after_logging_in(
    role: str, page: Any, live_server: Any, login_as: Any
) -> None:
    login_as(f"landing-{role}", role)
    assert urlparse(page.url).path == LANDING[role]
    assert page.locator("#login-form").count() == 0
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["radsal_session"]["httpOnly"] is True
    assert cookies["radsal_session"]["sameSite"] == "Lax"


def test_wrong_password_shows_an_error_and_stays_on_login(
    page: Any, live_server: Any, login_via_form: Any
) -> None:
    live_server.create_user("wrong-pw-user", "researcher")
    login_via_form(page, live_server.url, "wrong-pw-user", "not-the-password")
    assert urlparse(page.url).path == "/login"
    assert "Wrong username or password" in page.locator("#login-error").inner_text()
    assert page.locator("#login-form").count() == 1


def test_rater_typing_an_admin_url_gets_a_403_page(
    page: Any, live_server: Any, login_as: Any
) -> None:
    login_as("curious-rater", "rater")
    response = page.goto(f"{live_server.url}/admin/users")
    assert response is not None and response.status == 403
    assert "Not allowed" in page.locator("h1").inner_text()


def test_logout_ends_the_session(page: Any, live_server: Any, login_as: Any) -> None:
    login_as("leaving-admin", "admin")
    page.goto(f"{live_server.url}/admin/users")
    with page.expect_navigation():
        page.click(".who button[type=submit]")
    assert urlparse(page.url).path == "/login"
    page.goto(f"{live_server.url}/")
    assert urlparse(page.url).path == "/login"


def test_admin_invites_a_rater_who_sets_a_password_and_lands_on_rate(
    page: Any, browser: Any, live_server: Any, login_as: Any
) -> None:
    login_as("inviting-admin", "admin")
    page.goto(f"{live_server.url}/admin/users")
    page.fill("#new-username", "invited-rater")
    page.fill("#new-display-name", "Dr. <b>Invited</b>")
    page.select_option("#new-role", "rater")
    with page.expect_navigation():
        page.click("#create-user-form button[type=submit]")
    link = page.input_value("#invite-url")
    assert "/invite/" in link
    # The display name is shown as text, never as markup.
    row = page.locator("tr[data-username='invited-rater']")
    assert "Dr. <b>Invited</b>" in row.inner_text()

    rater_context = browser.new_context(viewport={"width": 1366, "height": 768})
    try:
        rater = rater_context.new_page()
        rater.goto(link)
        rater.fill("#password", "a-fresh-password")
        rater.fill("#password_confirm", "a-fresh-password")
        with rater.expect_navigation(url=f"{live_server.url}/rate**"):
            rater.click("#invite-form button[type=submit]")
        assert urlparse(rater.url).path == "/rate"
        # The link is single use.
        again = rater.goto(link)
        assert again is not None and again.status == 404
        assert "already used" in rater.content()
    finally:
        rater_context.close()
