"""Pre-registration from the browser pages: the builder's "Pre-registration" fieldset and the
draft page's plan form store the plan exactly as the API does, show a refused plan by its field
with what was typed, and refuse any change once the study has opened."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Study, User
from tests.factories import builder_form, make_open_study

PLAN = {"primary_analysis": "vgc", "alpha": 0.01, "item": "highlight"}


def _created_id(response: Any) -> int:
    assert response.status_code == 303, response.text
    return int(response.headers["location"].split("/")[2].split("?")[0])


def _plan_of(db: Session, study_id: int) -> dict[str, Any]:
    db.expire_all()
    study = db.get(Study, study_id)
    assert study is not None
    return dict(study.analysis_plan or {})


def _without_stamp(plan: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in plan.items() if k != "registered_at"}


def test_the_builder_stores_the_plan_as_the_api_does(
    db: Session,
    settings: Settings,
    client: TestClient,
    make_user: Callable[..., User],
    login: Callable[[User], Any],
    api_headers: Callable[[User], dict[str, str]],
) -> None:
    rater = make_user("rater", "plan-reader")
    base = make_open_study(db, settings.data_dir, raters=[rater], n_images=2, size=16)
    researcher = make_user("researcher")
    session = login(researcher)
    page = session.client.get("/studies/new")
    assert 'id="section-analysis_plan"' in page.text and 'name="plan_primary_analysis"' in page.text
    assert '<option value="highlight">highlight</option>' in page.text  # the builder's Likert item
    form = builder_form(
        base,
        name="Pre-registered study",
        raters=["plan-reader"],
        plan_primary_analysis="vgc",
        plan_alpha="0.01",
        plan_item="highlight",
    )
    by_form = _created_id(session.post_form("/studies/new", form))
    stored = _plan_of(db, by_form)
    assert _without_stamp(stored) == PLAN and stored["registered_at"].startswith("20")

    # The same plan sent to the API (a second draft of the same design) is stored the same way.
    spec = {
        "name": "Pre-registered by API",
        "image_ids": [si.image_id for si in base.images],
        "arms": [
            {"checkpoint_id": base.arms[0].checkpoint_id, "method": "gradient"},
            {"checkpoint_id": base.arms[1].checkpoint_id, "bn_route": "clean"},
        ],
        "raters": ["plan-reader"],
        "seed": 3,
        "analysis_plan": {"primary_analysis": "vgc", "alpha": 0.01, "item": "highlight"},
    }
    by_api = client.post("/api/v1/studies", json=spec, headers=api_headers(researcher))
    assert by_api.status_code == 201, by_api.text
    assert _without_stamp(_plan_of(db, by_api.json()["id"])) == _without_stamp(stored)
    assert set(_plan_of(db, by_api.json()["id"])) == set(stored)

    # The page shows it; the edit page offers it back; saving the draft again keeps the stamp.
    shown = session.client.get(f"/studies/{by_form}")
    assert "Pre-registered primary analysis: <strong>vgc</strong> at α = 0.01" in shown.text
    edit = session.client.get(f"/studies/{by_form}/edit")
    assert '<option value="vgc" selected>' in edit.text and 'value="0.01"' in edit.text
    saved = session.post_form(f"/studies/{by_form}/edit", {**form, "name": "Renamed"})
    assert saved.status_code == 303, saved.text
    assert _plan_of(db, by_form) == stored
    # Blank fields withdraw the plan (still a draft).
    blank = {**form, "plan_primary_analysis": "", "plan_alpha": "", "plan_item": ""}
    assert session.post_form(f"/studies/{by_form}/edit", blank).status_code == 303
    assert _plan_of(db, by_form) == {}


def test_a_refused_plan_comes_back_by_its_field_with_the_input_kept(
    db: Session, settings: Settings, make_user: Callable[..., User], login: Callable[[User], Any]
) -> None:
    make_user("rater", "typo-reader")
    base = make_open_study(db, settings.data_dir, raters=[make_user("rater")], n_images=2, size=16)
    session = login(make_user("researcher"))
    n_studies = db.query(Study).count()
    bad = builder_form(
        base,
        name="Pre-registered study",
        raters=["typo-reader"],
        plan_primary_analysis="magic",
        plan_alpha="0.9",
    )
    r = session.post_form("/studies/new", bad)
    assert r.status_code == 422
    assert 'data-error-for="analysis_plan.primary_analysis"' in r.text
    assert 'data-error-for="analysis_plan.alpha"' in r.text
    assert "less than or equal to 0.5" in r.text and "2 things need fixing" in r.text
    assert '<option value="magic" selected>' in r.text and 'value="0.9"' in r.text
    assert 'value="Pre-registered study"' in r.text  # the rest of the form is kept too
    # Words where a number belongs: refused by the spec, shown as typed.
    words = session.post_form("/studies/new", {**bad, "plan_primary_analysis": "or_mrmc",
                                               "plan_alpha": "five percent"})  # fmt: skip
    assert words.status_code == 422 and 'value="five percent"' in words.text
    alpha_errors = words.text.split('data-error-for="analysis_plan.alpha">')[1:]
    assert len(alpha_errors) == 1 and "valid number" in alpha_errors[0].split("</p>")[0]
    assert '<option value="or_mrmc" selected>' in words.text
    # An item that is not one of the study's Likert items is shown at the item.
    no_item = {**bad, "plan_primary_analysis": "clmm", "plan_alpha": "", "plan_item": "comment"}
    item = session.post_form("/studies/new", no_item)
    assert item.status_code == 422
    item_error = item.text.split('data-error-for="analysis_plan.item">')[1].split("</p>")[0]
    assert "not a Likert item" in item_error
    db.expire_all()
    assert db.query(Study).count() == n_studies  # nothing was stored


def test_the_draft_page_sets_changes_and_withdraws_the_plan(
    db: Session, settings: Settings, make_user: Callable[..., User], login: Callable[[User], Any]
) -> None:
    make_user("rater", "page-reader")
    base = make_open_study(db, settings.data_dir, raters=[make_user("rater")], n_images=2, size=16)
    session = login(make_user("researcher"))
    draft = _created_id(
        session.post_form(
            "/studies/new", builder_form(base, name="Pre-registered study", raters=["page-reader"])
        )
    )
    page = session.client.get(f"/studies/{draft}")
    assert 'id="plan-form"' in page.text and f'action="/studies/{draft}/plan"' in page.text
    assert "No analysis plan pre-registered" in page.text

    fields = {"plan_primary_analysis": "vgc", "plan_alpha": "0.01", "plan_item": "highlight"}
    saved = session.post_form(f"/studies/{draft}/plan", fields)
    assert saved.status_code == 303 and saved.headers["location"].endswith("done=planned")
    stored = _plan_of(db, draft)
    assert _without_stamp(stored) == PLAN
    shown = session.client.get(saved.headers["location"])
    assert "Analysis plan pre-registered" in shown.text
    assert "Pre-registered primary analysis: <strong>vgc</strong> at α = 0.01" in shown.text

    refused = session.post_form(f"/studies/{draft}/plan", {**fields, "plan_alpha": "0"})
    assert refused.status_code == 422
    form = refused.text.split('id="plan-form"')[1].split("</form>")[0]
    assert 'data-error-for="analysis_plan.alpha"' in form and "greater than 0" in form
    assert 'value="0"' in form and '<option value="vgc" selected>' in form
    assert _plan_of(db, draft) == stored  # refused: nothing changed

    changed = session.post_form(f"/studies/{draft}/plan", {"plan_primary_analysis": "or_mrmc"})
    assert changed.status_code == 303
    assert _without_stamp(_plan_of(db, draft)) == {
        "primary_analysis": "or_mrmc",
        "alpha": 0.05,
        "item": None,
    }
    withdrawn = session.post_form(f"/studies/{draft}/plan", {"plan_primary_analysis": ""})
    assert withdrawn.status_code == 303 and withdrawn.headers["location"].endswith("unplanned")
    assert _plan_of(db, draft) == {}


def test_an_open_study_refuses_a_plan_and_only_staff_may_post_one(
    db: Session, settings: Settings, make_user: Callable[..., User], login: Callable[[User], Any]
) -> None:
    rater = make_user("rater")
    study = make_open_study(db, settings.data_dir, raters=[rater], n_images=2, size=16)
    study.analysis_plan = {"primary_analysis": "lmm", "alpha": 0.05, "item": None,
                           "registered_at": "2026-01-02T03:04:05+00:00"}  # fmt: skip
    db.flush()
    before = dict(study.analysis_plan)
    session = login(make_user("researcher"))
    page = session.client.get(f"/studies/{study.id}")
    assert 'id="plan-form"' not in page.text  # read-only once open
    assert "Pre-registered primary analysis: <strong>lmm</strong>" in page.text
    late = session.post_form(f"/studies/{study.id}/plan", {"plan_primary_analysis": "vgc"})
    assert late.status_code == 409 and "pre-registered" in late.text
    assert session.client.get(f"/studies/{study.id}/edit").status_code == 409
    assert _plan_of(db, study.id) == before

    rater_session = login(rater)
    forbidden = rater_session.post_form(
        f"/studies/{study.id}/plan", {"plan_primary_analysis": "vgc"}
    )
    assert forbidden.status_code == 403  # raters are not staff
    assert _plan_of(db, study.id) == before
