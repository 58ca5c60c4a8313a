"""The study builder without traps: every problem at once, in plain words, by its field; no
image ticked unless chosen; drafts editable in the builder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Study, User
from tests.factories import builder_form, make_open_study


def test_every_problem_is_listed_at_once_by_its_field(
    db: Session, settings: Settings, make_user: Callable[..., User], login: Callable[[User], Any]
) -> None:
    rater = make_user("rater", "builder-reader")
    base = make_open_study(db, settings.data_dir, raters=[rater], n_images=2, size=16)
    session = login(make_user("researcher"))
    r = session.post_form(
        "/studies/new",
        builder_form(base, raters=["ghost-reader", "builder-reader"], image_ids=["999999"]),
    )
    assert r.status_code == 422
    assert 'id="builder-errors"' in r.text
    assert "Unknown rater(s): ghost-reader" in r.text
    assert 'data-error-for="raters"' in r.text and 'data-error-for="image_ids"' in r.text
    assert "2 things need fixing" in r.text
    assert "Value error" not in r.text and "Invalid study:" not in r.text
    # What was typed stays.
    assert 'value="Builder study"' in r.text


def test_images_are_not_ticked_by_default(
    db: Session, settings: Settings, make_user: Callable[..., User], login: Callable[[User], Any]
) -> None:
    make_open_study(db, settings.data_dir, raters=[make_user("rater")], n_images=2, size=16)
    session = login(make_user("researcher"))
    page = session.client.get("/studies/new")
    assert 'name="image_ids"' in page.text
    assert (
        'name="image_ids" value="' in page.text
        and " checked>" not in page.text.split('id="image-picker"')[1].split("</ul>")[0]
    )
    assert 'data-select="none"' in page.text and 'data-filter-label="pneumonia"' in page.text


def test_a_draft_opens_in_the_builder_and_saves(
    db: Session, settings: Settings, make_user: Callable[..., User], login: Callable[[User], Any]
) -> None:
    rater = make_user("rater", "draft-reader")
    base = make_open_study(db, settings.data_dir, raters=[rater], n_images=2, size=16)
    session = login(make_user("researcher"))
    created = session.post_form("/studies/new", builder_form(base, raters=["draft-reader"]))
    assert created.status_code == 303, created.text
    study_id = int(created.headers["location"].split("/")[2].split("?")[0])
    edit = session.client.get(f"/studies/{study_id}/edit")
    assert edit.status_code == 200 and 'value="Builder study"' in edit.text
    assert f'action="/studies/{study_id}/edit"' in edit.text
    saved = session.post_form(
        f"/studies/{study_id}/edit",
        builder_form(base, name="Renamed draft", raters=["draft-reader"]),
    )
    assert saved.status_code == 303
    db.expire_all()
    study = db.get(Study, study_id)
    assert study is not None and study.name == "Renamed draft"
    refused = session.post_form(
        f"/studies/{study_id}/edit", builder_form(base, name="Bad", raters=["nobody-at-all"])
    )
    assert refused.status_code == 422 and "Unknown rater" in refused.text
    db.expire_all()
    assert db.get(Study, study_id).name == "Renamed draft"  # type: ignore[union-attr]
    open_study = session.client.get(f"/studies/{base.id}/edit")
    assert open_study.status_code == 409
