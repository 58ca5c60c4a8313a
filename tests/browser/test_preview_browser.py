"""The staff preview in a real Chromium: a researcher previews a draft study's trials and the
reading-room viewer draws the image and both maps (the rater's viewer, staff URLs by trial id),
then steps to the next trial, whose description it prefetched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.models import StudyStatus, Trial
from app.services.accounts.users import create_user
from tests.browser.conftest import PASSWORD
from tests.factories import make_open_study

pytestmark = pytest.mark.browser


def test_researcher_previews_a_draft_in_the_raters_viewer(
    page: Any, live_server: Any, login_as: Any, tmp_path: Path
) -> None:
    with live_server.session() as db:
        rater, _ = create_user(
            db, actor=None, username="preview-rater", role="rater", password=PASSWORD
        )
        study = make_open_study(
            db, live_server.data_dir, raters=[rater], n_images=3, size=96, name="Preview study"
        )
        study.status = StudyStatus.draft.value  # researchers preview before opening
        db.flush()
        study_id = study.id
        trial_ids = list(
            db.scalars(
                select(Trial.id)
                .where(Trial.study_id == study_id, Trial.rater_id == rater.id)
                .order_by(Trial.position)
            )
        )
    login_as("previewing-researcher", "researcher")
    failed: list[str] = []
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)

    page.goto(f"{live_server.url}/studies/{study_id}")
    with page.expect_navigation():
        page.click("text=Preview a trial")
    assert page.url.endswith(f"/studies/{study_id}/preview/{trial_ids[0]}")
    page.wait_for_selector("#trial[data-ready='1']")
    assert "could not be loaded" not in page.inner_text("#vp-loading")
    assert page.inner_text("#finding") not in ("", "…")
    assert "Preview (staff only)" in page.inner_text(".trial-notice")
    page.screenshot(path=str(tmp_path / "preview.png"))
    files = f"/studies/{study_id}/preview/{trial_ids[1]}/view"
    page.wait_for_function(
        "url => performance.getEntriesByType('resource').some(e => e.name.endsWith(url))",
        arg=f"{files}/b",
    )  # the next trial's description and files are prefetched

    page.keyboard.press("z")  # a pick on this preview (never saved) …
    assert page.locator('input[name="preference"]:checked').count() == 1
    with page.expect_navigation():
        page.click("#next-link")
    assert page.url.endswith(f"/studies/{study_id}/preview/{trial_ids[1]}")
    page.wait_for_selector("#trial[data-ready='1']")
    assert "could not be loaded" not in page.inner_text("#vp-loading")
    # … is not restored on the next trial's preview (each has its own draft)
    assert page.locator('input[name="preference"]:checked').count() == 0
    # The first page prefetched this trial's description from the staff route.
    viewer = f"/api/v1/studies/{study_id}/preview"
    assert any(u.endswith(f"{viewer}/{trial_ids[1]}/viewer") for u in requests)
    assert not any("/api/v1/trials/" in u for u in requests), "no rater-only route is asked"
    assert failed == []
