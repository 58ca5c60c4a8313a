"""The study page's map-metrics panel in a real Chromium: the page renders a placeholder and
static/js/map_metrics.js puts the statistics in its place, without a reload (issue 17)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.models import Arm, SaliencyMap
from app.services.accounts.users import create_user
from tests.browser.conftest import PASSWORD
from tests.factories import make_open_study

pytestmark = pytest.mark.browser


def test_the_panel_loads_into_the_study_page(
    page: Any, live_server: Any, login_as: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect  # here: a missing Playwright skips, not errors

    with live_server.session() as db:
        rater = create_user(db, actor=None, username="mmrater", role="rater", password=PASSWORD)[0]
        study = make_open_study(
            db, live_server.data_dir, raters=[rater], n_images=4, size=16, name="mm study"
        )
        study.saliency = {**study.saliency, "target": "pneumonia"}  # the factory's maps' target
        db.flush()
        arm_ids = [a.id for a in db.scalars(select(Arm).where(Arm.study_id == study.id))]
        for k, m in enumerate(
            db.scalars(select(SaliencyMap).where(SaliencyMap.arm_id.in_(arm_ids)))
        ):
            m.metrics = {"gini": 0.2 + 0.05 * k, "entropy": 0.9 - 0.02 * k, "tv": 0.01 * k}
        study_id = study.id
    login_as("mm-researcher", "researcher")
    page.goto(f"{live_server.url}/studies/{study_id}")
    page.evaluate("window.__noReload = true")
    table = page.locator('#map-metrics [data-map-metrics="arms"]')
    expect(table).to_be_visible(timeout=30_000)
    assert page.locator("[data-map-metrics-src]").count() == 0
    assert "gini [95% CI]" in table.inner_text()
    assert page.locator('#map-metrics [data-map-metrics="paired"]').is_visible()
    assert page.evaluate("window.__noReload === true")
    page.screenshot(path=str(tmp_path / "map-metrics.png"), full_page=True)
