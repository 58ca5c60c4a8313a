"""The study builder in a real Chromium: filters do not reload (typed input survives), images
can be selected none/all/by label, a mismatch warns, every error shows at once, and a draft
can be edited and deleted (after a question)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.models import Image, Study
from app.services.accounts.users import create_user
from tests.browser.conftest import PASSWORD
from tests.factories import make_open_study

pytestmark = pytest.mark.browser


def _catalog(live_server: Any) -> dict[str, Any]:
    with live_server.session() as db:
        rater, _ = create_user(db, actor=None, username="builder-rater", role="rater",
                               password=PASSWORD)  # fmt: skip
        study = make_open_study(db, live_server.data_dir, raters=[rater], n_images=3, size=16,
                                name="catalogue source")  # fmt: skip
        ct = db.get(Image, study.images[0].image_id)
        assert ct is not None
        ct.modality, ct.channels = "CT", 3  # a CT slice among chest X-rays
        return {"images": [si.image_id for si in study.images], "ct": ct.id}


def test_builder_keeps_input_selects_and_warns(
    page: Any, live_server: Any, login_as: Any, tmp_path: Path
) -> None:
    cat = _catalog(live_server)
    login_as("builder-researcher", "researcher")
    page.goto(f"{live_server.url}/studies/new")
    page.fill("#name", "Typed before filtering")
    page.fill("#instructions", "These words must survive a filter click.")
    page.evaluate("window.__noReload = true")
    page.click("[data-filter-modality=CT]")
    n_ct = page.locator('#image-picker li[data-modality="CT"]').count()
    assert n_ct >= 1 and page.locator("#image-picker li:not([hidden])").count() == n_ct
    page.click("[data-filter-all]")
    assert page.input_value("#name") == "Typed before filtering"
    assert page.input_value("#instructions") == "These words must survive a filter click."
    assert page.evaluate("window.__noReload === true")
    # Nothing is ticked until chosen; all / none / by label.
    assert page.locator("#image-picker input:checked").count() == 0
    page.click('[data-select="all"]')  # the server may hold other tests' images too
    everything = page.locator("#image-picker li").count()
    assert everything >= 3 and page.locator("#image-picker input:checked").count() == everything
    page.click('[data-select="none"]')
    assert page.locator("#image-picker input:checked").count() == 0
    page.click('[data-select-label="pneumonia"]')
    assert page.locator("#image-picker input:checked").count() >= 1
    # Picking the CT slice for the X-ray models warns, in words.
    page.select_option('select[name="arm0_checkpoint"]', index=1)
    page.check(f'#image-picker input[value="{cat["ct"]}"]')
    warning = page.locator("#image-warning")
    assert warning.is_visible()
    text = warning.inner_text()
    assert "mix modalities" in text and "channel" in text
    page.screenshot(path=str(tmp_path / "builder-warning.png"), full_page=True)

    # Submitting with problems lists them all, by their fields, and keeps the input.
    page.check('input[name="raters"][value="builder-rater"]')
    with page.expect_navigation():
        page.click("form.builder button[type=submit]")
    assert page.locator("#builder-errors").is_visible()
    assert page.input_value("#name") == "Typed before filtering"
    page.screenshot(path=str(tmp_path / "builder-errors.png"), full_page=True)


def test_a_draft_is_edited_then_deleted_after_a_question(
    page: Any, live_server: Any, login_as: Any
) -> None:
    with live_server.session() as db:
        rater, _ = create_user(db, actor=None, username="draft-rater", role="rater",
                               password=PASSWORD)  # fmt: skip
        source = make_open_study(db, live_server.data_dir, raters=[rater], n_images=2, size=16,
                                 name="draft source")  # fmt: skip
        draft = Study(name="Failed draft", instructions="", status="draft", seed=1,
                      items=source.items, saliency=source.saliency)  # fmt: skip
        db.add(draft)
        db.flush()
        draft_id = draft.id
    login_as("draft-researcher", "researcher")
    page.goto(f"{live_server.url}/studies/{draft_id}")
    page.click("#delete-study-form button[type=submit]")
    dialog = page.locator("dialog.confirm-dialog")
    assert "Delete the draft" in dialog.inner_text()
    with page.expect_navigation():
        dialog.get_by_role("button", name="Delete draft").click()
    assert page.url.endswith("/studies") or "/studies?" in page.url
    with live_server.session() as db:
        assert db.get(Study, draft_id) is None
