"""The study page in a real Chromium: Close asks first and Reopen brings the study back; the
status badge and rater progress change without a reload; drafts can be deleted (after a
question); the trial browser filters and jumps to a trial's preview."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.models import Job, Study, StudyStatus, User
from app.models.base import utcnow
from app.services.accounts.users import create_user
from tests.app.analysis_helpers import rate
from tests.browser.conftest import PASSWORD
from tests.factories import make_open_study

pytestmark = pytest.mark.browser


def _study(live_server: Any, prefix: str, n_raters: int = 2) -> tuple[int, list[str]]:
    with live_server.session() as db:
        raters = [
            create_user(db, actor=None, username=f"{prefix}{i}", role="rater", password=PASSWORD)[0]
            for i in range(n_raters)
        ]
        study = make_open_study(
            db, live_server.data_dir, raters=raters, n_images=3, size=16, name=f"{prefix} study"
        )
        study.saliency = {**study.saliency, "target": "pneumonia"}  # the factory's maps' target
        db.flush()
        return study.id, [r.username for r in raters]


def _status(live_server: Any, study_id: int) -> str:
    with live_server.session() as db:
        study = db.get(Study, study_id)
        assert study is not None
        return study.status


def _mark_no_reload(page: Any) -> None:
    page.evaluate("window.__noReload = true")


def _not_reloaded(page: Any) -> bool:
    return bool(page.evaluate("window.__noReload === true"))


def test_close_asks_first_and_reopen_brings_it_back(
    page: Any, live_server: Any, login_as: Any, tmp_path: Path
) -> None:
    study_id, _ = _study(live_server, "closer")
    login_as("closing-researcher", "researcher")
    page.goto(f"{live_server.url}/studies/{study_id}")
    page.click("#close-study-form button[type=submit]")
    dialog = page.locator("dialog.confirm-dialog")
    assert dialog.is_visible() and "You can reopen" in dialog.inner_text()
    page.screenshot(path=str(tmp_path / "confirm-close.png"))
    dialog.get_by_role("button", name="Cancel").click()
    assert _status(live_server, study_id) == "open"
    page.click("#close-study-form button[type=submit]")
    with page.expect_navigation():
        dialog.get_by_role("button", name="Close study").click()
    assert _status(live_server, study_id) == "closed"
    page.click("#reopen-study-form button[type=submit]")
    with page.expect_navigation():
        page.locator("dialog.confirm-dialog").get_by_role("button", name="Reopen").click()
    assert _status(live_server, study_id) == "open"
    assert "done=" not in page.url  # the one-off message does not come back on reload


def test_badge_and_rater_progress_update_without_reload(
    page: Any, live_server: Any, login_as: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect  # here: a missing Playwright skips, not errors

    study_id, usernames = _study(live_server, "livebadge")
    with live_server.session() as db:
        study = db.get(Study, study_id)
        assert study is not None
        study.status = StudyStatus.generating.value
        job = Job(kind="generate", study_id=study_id, status="running", done=5, total=6,
                  started_at=utcnow(), heartbeat_at=utcnow())  # fmt: skip
        db.add(job)
        db.flush()
        job_id = job.id
    login_as("watching-researcher", "researcher")
    page.goto(f"{live_server.url}/studies/{study_id}")
    _mark_no_reload(page)
    badge = page.locator('[data-live="status"]').first
    with live_server.session() as db:
        job = db.get(Job, job_id)
        assert job is not None
        job.status, job.done, job.finished_at = "done", 6, utcnow()
    expect(badge).to_have_text("maps ready", timeout=15_000)
    assert page.locator('[data-live-when="maps-ready"]').first.is_visible()

    with live_server.session() as db:
        study = db.get(Study, study_id)
        assert study is not None
        study.status = StudyStatus.open.value
        db.flush()
        rate(db, study, _users(db, usernames), limit={usernames[0]: 2})
    row = page.locator(f'tr[data-rater="{usernames[0]}"] [data-live="done"]')
    expect(row).to_have_text("2 / 3", timeout=15_000)
    assert row.inner_text().strip() == "2 / 3"
    assert page.locator('[data-live="status"]').first.inner_text().strip() == "open"
    assert _not_reloaded(page)
    page.screenshot(path=str(tmp_path / "study-live.png"), full_page=True)


def _users(db: Any, usernames: list[str]) -> list[User]:
    stmt = select(User).where(User.username.in_(usernames)).order_by(User.username)
    return list(db.scalars(stmt))


def test_trial_browser_filters_and_jumps_to_a_preview(
    page: Any, live_server: Any, login_as: Any, tmp_path: Path
) -> None:
    study_id, usernames = _study(live_server, "browsed")
    with live_server.session() as db:
        study = db.get(Study, study_id)
        rate(db, study, _users(db, usernames), limit={usernames[0]: 3, usernames[1]: 1})
    login_as("browsing-researcher", "researcher")
    page.goto(f"{live_server.url}/studies/{study_id}")
    with page.expect_navigation():
        page.click("text=Browse trials")
    assert page.locator("#trial-table tbody tr").count() == 6
    page.select_option("#f-rater", usernames[1])
    page.select_option("#f-flag", "rated")
    with page.expect_navigation():
        page.click("#trial-filters button[type=submit]")
    assert page.locator("#trial-table tbody tr").count() == 1
    page.screenshot(path=str(tmp_path / "trial-browser.png"), full_page=True)
    with page.expect_navigation():
        page.click("#trial-table tbody tr >> text=Preview")
    assert "/preview/" in page.url
