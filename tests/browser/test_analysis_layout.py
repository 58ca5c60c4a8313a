"""The analysis page fits a 1280 px window and a printed page: nothing overflows sideways,
figures stay inside their cards, and no figure merely pictures a table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.models import Study, User
from app.services.accounts.users import create_user
from tests.app.analysis_helpers import add_repeats, make_rated_study, rate
from tests.browser.conftest import PASSWORD

pytestmark = pytest.mark.browser

LONG_QUESTION = (
    "How well does this map highlight the region a radiologist would look at to find the "
    "finding, considering both its location and its extent on the image?"
)

OVERFLOW_JS = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('main *')].filter(
    el => el.getBoundingClientRect().right > width + 1 && !el.closest('.card'));
  const figs = [...document.querySelectorAll('figure.analysis-figure img')].filter(img => {
    const card = img.closest('.card').getBoundingClientRect();
    return img.getBoundingClientRect().right > card.right + 1;
  });
  return {scroll: document.documentElement.scrollWidth, width,
          wide: wide.map(el => el.tagName + '.' + el.className), figs: figs.length};
}"""


def _rated_study(live_server: Any) -> int:
    with live_server.session() as db:
        raters = []
        for i in range(3):
            user, _ = create_user(
                db, actor=None, username=f"layout-reader{i}", role="rater", password=PASSWORD
            )
            raters.append(user)
        study = make_rated_study(db, live_server.data_dir, raters, n_images=8)
        items = [dict(i) for i in study.items]
        items[0]["question"] = LONG_QUESTION
        study.items = items
        add_repeats(db, study, raters[0], 3)
        rate(db, study, raters[:1])
        db.flush()
        assert isinstance(study, Study) and all(isinstance(r, User) for r in raters)
        return study.id


def test_analysis_page_fits_1280_px_and_print(
    page: Any, live_server: Any, login_as: Any, tmp_path: Path
) -> None:
    study_id = _rated_study(live_server)
    login_as("layout-researcher", "researcher")
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(f"{live_server.url}/studies/{study_id}/analysis")
    page.wait_for_selector("figure.analysis-figure img")
    page.screenshot(path=str(tmp_path / "analysis-1280.png"), full_page=True)
    result = page.evaluate(OVERFLOW_JS)
    assert result["scroll"] <= result["width"], result
    assert result["wide"] == [] and result["figs"] == 0, result
    # No figure pictures the agreement table; the repeat count is explained.
    assert page.locator('img[alt="Agreement table"]').count() == 0
    assert "one pair per arm" in page.locator("caption").first.inner_text()

    page.emulate_media(media="print")
    page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
    page.screenshot(path=str(tmp_path / "analysis-print.png"), full_page=True)
    printed = page.evaluate(OVERFLOW_JS)
    assert printed["figs"] == 0, printed
    assert page.locator(".topbar").is_hidden()
