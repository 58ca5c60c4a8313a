"""Pre-registration in a real Chromium: the plan chosen in the builder's "Pre-registration"
fieldset is on the new study's page, and the draft's page changes it with its own form."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from app.models import Study
from app.services.accounts.users import create_user
from tests.browser.conftest import PASSWORD
from tests.factories import make_open_study

pytestmark = pytest.mark.browser


def test_the_plan_from_the_builder_is_on_the_study_page(
    page: Any, live_server: Any, login_as: Any, tmp_path: Path
) -> None:
    with live_server.session() as db:
        rater, _ = create_user(db, actor=None, username="plan-rater", role="rater",
                               password=PASSWORD)  # fmt: skip
        source = make_open_study(db, live_server.data_dir, raters=[rater], n_images=2, size=16,
                                 name="plan source")  # fmt: skip
        arms = [(str(a.checkpoint_id), a.bn_route or "") for a in source.arms]
        images = [si.image_id for si in source.images]
    login_as("plan-researcher", "researcher")
    page.goto(f"{live_server.url}/studies/new")
    page.fill("#name", "Pre-registered in the builder")
    for n, (checkpoint, route) in enumerate(arms):
        page.select_option(f'select[name="arm{n}_checkpoint"]', checkpoint)
        page.select_option(f'select[name="arm{n}_route"]', route)
    for image_id in images:
        page.check(f'#image-picker input[value="{image_id}"]')
    page.check('input[name="raters"][value="plan-rater"]')
    # The fieldset offers the analyses the spec accepts and the builder's Likert item.
    section = page.locator("#section-analysis_plan")
    assert "Pre-registration" in section.inner_text()
    page.select_option("#plan_primary_analysis", "vgc")
    page.fill("#plan_alpha", "0.01")
    page.select_option("#plan_item", "highlight")
    with page.expect_navigation():
        page.click("form.builder button[type=submit]")
    found = re.search(r"/studies/(\d+)", page.url)
    assert found, page.locator("body").inner_text()
    study_id = int(found.group(1))
    plan = page.locator("#analysis-plan").inner_text()
    assert "Pre-registered primary analysis: vgc at α = 0.01 on item “highlight”" in plan
    with live_server.session() as db:
        stored = db.get(Study, study_id)
        assert stored is not None and stored.status == "draft"
        assert stored.analysis_plan["primary_analysis"] == "vgc"
        assert stored.analysis_plan["alpha"] == 0.01

    # The draft's page shows the plan in its form and changes it there.
    assert page.input_value("#plan-form #plan_primary_analysis") == "vgc"
    assert page.input_value("#plan-form #plan_alpha") == "0.01"
    page.select_option("#plan-form #plan_primary_analysis", "or_mrmc")
    page.fill("#plan-form #plan_alpha", "0.9")
    with page.expect_navigation():
        page.click("#plan-form button[type=submit]")
    error = page.locator('#plan-form [data-error-for="analysis_plan.alpha"]')
    assert error.is_visible() and "0.5" in error.inner_text()
    assert page.input_value("#plan-form #plan_alpha") == "0.9"  # kept as typed
    page.fill("#plan-form #plan_alpha", "0.025")
    with page.expect_navigation():
        page.click("#plan-form button[type=submit]")
    assert "Analysis plan pre-registered" in page.locator("body").inner_text()
    plan = page.locator("#analysis-plan").inner_text()
    assert "Pre-registered primary analysis: or_mrmc at α = 0.025" in plan
    page.screenshot(path=str(tmp_path / "plan-on-study-page.png"), full_page=True)
