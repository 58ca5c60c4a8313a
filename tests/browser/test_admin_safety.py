"""Admin pages in a real Chromium: destructive actions ask first (and can be undone), invite
links copy and download, /api/docs renders under the CSP, single sign-on logs in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from sqlalchemy import select

from app.models import User
from tests.browser.conftest import LiveServer, start_server
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, running_provider

pytestmark = pytest.mark.browser


def _csp_violations(page: Any) -> list[str]:
    messages: list[str] = []
    page.on(
        "console",
        lambda msg: messages.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    return messages


def _active(live_server: Any, username: str) -> bool:
    with live_server.session() as db:
        user = db.scalar(select(User).where(User.username == username))
        assert user is not None
        return bool(user.is_active)


def test_deactivate_asks_first_and_can_be_undone(
    page: Any, live_server: Any, login_as: Any, tmp_path: Path
) -> None:
    live_server.create_user("careful-researcher", "researcher")
    login_as("careful-admin", "admin")
    page.goto(f"{live_server.url}/admin/users")
    row = page.locator('tr[data-username="careful-researcher"]')

    # One click opens a question, not the deed; Cancel leaves the account alone.
    row.get_by_role("button", name="Deactivate").click()
    dialog = page.locator("dialog.confirm-dialog")
    assert dialog.is_visible()
    assert "Deactivate careful-researcher?" in dialog.inner_text()
    page.screenshot(path=str(tmp_path / "confirm-deactivate.png"))
    dialog.get_by_role("button", name="Cancel").click()
    page.wait_for_selector("dialog.confirm-dialog", state="detached")
    assert _active(live_server, "careful-researcher")

    # Confirming deactivates; the next page offers Undo, which reactivates.
    row.get_by_role("button", name="Deactivate").click()
    with page.expect_navigation():
        page.locator("dialog.confirm-dialog").get_by_role("button", name="Deactivate").click()
    assert not _active(live_server, "careful-researcher")
    with page.expect_navigation():
        page.click("#undo-deactivate")
    assert _active(live_server, "careful-researcher")


def test_invite_link_has_a_copy_button_and_bulk_links_download_once(
    page: Any, live_server: Any, login_as: Any, tmp_path: Path
) -> None:
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    login_as("copying-admin", "admin")
    page.goto(f"{live_server.url}/admin/users")
    page.fill("#new-username", "copied-rater")
    with page.expect_navigation():
        page.click("#create-user-form button[type=submit]")
    link = page.input_value("#invite-url")
    page.click('[data-copy-target="invite-url"]')
    page.wait_for_function(
        "document.querySelector('[data-copy-target=invite-url]').textContent !== 'Copy link'"
    )
    label = page.inner_text('[data-copy-target="invite-url"]')
    assert label in ("Copied", "Press Ctrl+C")
    if label == "Copied":
        assert page.evaluate("navigator.clipboard.readText()") == link

    csv_file = tmp_path / "people.csv"
    csv_file.write_text("name,role\nBrowser Person,rater\nOther Person,researcher\n")
    page.set_input_files("#bulk-csv", str(csv_file))
    with page.expect_navigation():
        page.click("#bulk-form button[type=submit]")
    assert page.locator("#bulk-result").is_visible()
    page.screenshot(path=str(tmp_path / "bulk-invites.png"), full_page=True)
    with page.expect_download() as info:
        page.click("#bulk-download")
    saved = tmp_path / "links.csv"
    info.value.save_as(str(saved))
    lines = saved.read_text().splitlines()
    assert lines[0] == "username,display_name,role,invite_url,expires_at_utc"
    assert [line.split(",")[0] for line in lines[1:]] == ["browser.person", "other.person"]
    assert all("/invite/" in line for line in lines[1:])


def test_api_docs_render_operations_under_the_csp(
    page: Any, live_server: Any, tmp_path: Path
) -> None:
    violations = _csp_violations(page)
    page.goto(f"{live_server.url}/api/docs")
    page.wait_for_selector(".opblock", timeout=20_000)
    assert page.locator(".opblock").count() > 20
    assert page.locator(".opblock-summary-path", has_text="/api/v1/users/bulk").count() == 1
    page.screenshot(path=str(tmp_path / "api-docs.png"))
    assert violations == []


@pytest.fixture()
def sso_server(tmp_path: Path) -> Iterator[tuple[LiveServer, Provider]]:
    with running_provider() as provider:
        server = start_server(
            tmp_path / "sso_server",
            {
                "RADSAL_OIDC_ISSUER": provider.url,
                "RADSAL_OIDC_CLIENT_ID": CLIENT_ID,
                "RADSAL_OIDC_CLIENT_SECRET": CLIENT_SECRET,
                "RADSAL_OIDC_ROLE_CLAIM": "groups",
                "RADSAL_OIDC_ROLE_MAP": "radiology-research=researcher",
            },
        )
        try:
            yield server, provider
        finally:
            server.stop()


def test_single_sign_on_logs_a_researcher_in(
    page: Any, sso_server: tuple[LiveServer, Provider], tmp_path: Path
) -> None:
    server, provider = sso_server
    provider.login_as(sub="b-1", preferred_username="sso.researcher", name="SSO Researcher",
                      groups=["radiology-research"])  # fmt: skip
    page.goto(f"{server.url}/login")
    page.screenshot(path=str(tmp_path / "login-sso.png"))
    with page.expect_navigation(url=f"{server.url}/studies"):
        page.click("#sso-login")
    assert urlparse(page.url).path == "/studies"
    assert "SSO Researcher" in page.locator(".who").inner_text()
    assert "researcher" in page.locator(".who").inner_text()
