"""The rater's journey over HTTP: home, continue, trial pages, images, order, resume, edits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Rating, RatingRevision, SaliencyMap, Study, Trial, User
from tests.factories import make_open_study, rating_payload


def trials_of(db: Session, study: Study, rater: User) -> list[Trial]:
    return list(
        db.scalars(
            select(Trial)
            .where(Trial.study_id == study.id, Trial.rater_id == rater.id)
            .order_by(Trial.position)
        )
    )


@pytest.fixture()
def raters(make_user: Callable[..., User]) -> list[User]:
    return [make_user("rater", "reader_one", None), make_user("rater", "reader_two", None)]


@pytest.fixture()
def study(db: Session, settings: Settings, raters: list[User]) -> Study:
    return make_open_study(db, settings.data_dir, raters=raters, n_images=4)


def test_home_lists_own_studies_with_own_progress(
    db: Session, settings: Settings, raters: list[User], study: Study, login, client: TestClient
) -> None:
    other = make_open_study(db, settings.data_dir, raters=[raters[1]], name="Not yours", seed=3)
    me = login(raters[0])
    first = trials_of(db, study, raters[0])[0]
    assert me.post_json(f"/api/v1/trials/{first.token}/rating", rating_payload()).status_code == 200

    page = client.get("/rate")
    assert page.status_code == 200
    assert study.name in page.text
    assert other.name not in page.text
    assert "1 of 4 trials rated" in page.text
    assert f'href="/rate/{study.id}"' in page.text
    assert "Continue" in page.text


def test_continue_redirects_to_first_unanswered_trial_and_resumes(
    db: Session, raters: list[User], study: Study, login, client: TestClient
) -> None:
    me = login(raters[0])
    seq = trials_of(db, study, raters[0])
    r = client.get(f"/rate/{study.id}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/t/{seq[0].token}"

    for trial in seq[:2]:
        saved = me.post_json(f"/api/v1/trials/{trial.token}/rating", rating_payload())
        assert saved.status_code == 200, saved.text
    assert saved.json()["next_url"] == f"/t/{seq[2].token}"
    # A new device (a fresh session) resumes at the same place.
    client.cookies.clear()
    login(raters[0])
    r = client.get(f"/rate/{study.id}", follow_redirects=False)
    assert r.headers["location"] == f"/t/{seq[2].token}"
    page = client.get(r.headers["location"])
    assert page.status_code == 200
    assert "Trial <strong>3</strong> of 4" in page.text


def test_trial_page_shows_question_items_and_hotkeys(
    db: Session, raters: list[User], study: Study, login, client: TestClient
) -> None:
    login(raters[0])
    token = trials_of(db, study, raters[0])[0].token
    page = client.get(f"/t/{token}")
    assert page.status_code == 200
    html = page.text
    assert 'data-theme="dark"' in html
    assert "How well does this map highlight" in html
    for text in ("Map A", "Map B", "No preference", "Save &amp; next", "<kbd>Enter</kbd>"):
        assert text in html
    assert f'data-map-a-url="/t/{token}/view/a"' in html
    assert f'data-image-url="/t/{token}/image.png"' in html
    assert html.count('name="highlight:left"') == 5
    assert "/static/js/viewer.js" in html
    shown = db.scalar(select(Trial.first_shown_at).where(Trial.token == token))
    assert shown is not None


def test_images_are_the_stored_left_and_right_maps_with_cache_headers(
    db: Session, settings: Settings, raters: list[User], study: Study, login, client: TestClient
) -> None:
    login(raters[0])
    for trial in trials_of(db, study, raters[0]):
        for slot, arm_id in (("a", trial.left_arm_id), ("b", trial.right_arm_id)):
            field = db.scalar(
                select(SaliencyMap.field_path).where(
                    SaliencyMap.arm_id == arm_id, SaliencyMap.image_id == trial.image_id
                )
            )
            # No per-arm rendered PNG is reachable by a rater (its size tells arms apart).
            assert client.get(f"/t/{trial.token}/{slot}.png").status_code == 404
            r = client.get(f"/t/{trial.token}/view/{slot}")
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/octet-stream"
            assert r.content == (Path(settings.data_dir) / str(field)).read_bytes()
            assert r.headers["cache-control"] == "private, max-age=31536000, immutable"
            assert "content-disposition" not in r.headers
            again = client.get(
                f"/t/{trial.token}/view/{slot}", headers={"If-None-Match": r.headers["etag"]}
            )
            assert again.status_code == 304
            assert again.content == b""
        image = client.get(f"/t/{trial.token}/image.png")
        assert image.status_code == 200 and image.content.startswith(b"\x89PNG")


def test_other_raters_tokens_are_not_found(
    db: Session, raters: list[User], study: Study, login, client: TestClient
) -> None:
    me = login(raters[0])
    theirs = trials_of(db, study, raters[1])[0].token
    for url in (f"/t/{theirs}", f"/t/{theirs}/view/a", f"/t/{theirs}/image.png"):
        assert client.get(url).status_code == 404, url
    assert client.get(f"/api/v1/trials/{theirs}").status_code == 404
    r = me.post_json(f"/api/v1/trials/{theirs}/rating", rating_payload())
    assert r.status_code == 404
    assert db.scalar(select(func.count(Rating.id))) == 0
    assert client.get("/t/not-a-token").status_code == 404


def test_studies_the_rater_is_not_in_are_not_found(
    db: Session, settings: Settings, raters: list[User], make_user, login, client: TestClient
) -> None:
    outsider = make_user("rater", "outsider", None)
    study = make_open_study(db, settings.data_dir, raters=raters)
    login(outsider)
    assert client.get(f"/rate/{study.id}", follow_redirects=False).status_code == 404
    assert client.get(f"/api/v1/trials/next?study_id={study.id}").status_code == 404
    assert client.get("/api/v1/trials/next").status_code == 404


def test_draft_study_is_invisible_and_closed_study_refuses_ratings(
    db: Session, raters: list[User], study: Study, login, client: TestClient
) -> None:
    me = login(raters[0])
    token = trials_of(db, study, raters[0])[0].token
    study.status = "draft"
    db.flush()
    assert client.get(f"/rate/{study.id}", follow_redirects=False).status_code == 404
    assert study.name not in client.get("/rate").text
    study.status = "closed"
    db.flush()
    r = me.post_json(f"/api/v1/trials/{token}/rating", rating_payload())
    assert r.status_code == 409
    assert r.json()["code"] == "conflict"
    assert client.get(f"/t/{token}").status_code == 409
    assert "This study is closed" in client.get("/rate").text


def test_trials_are_answered_in_order(
    db: Session, raters: list[User], study: Study, login, client: TestClient
) -> None:
    me = login(raters[0])
    seq = trials_of(db, study, raters[0])
    ahead = client.get(f"/t/{seq[2].token}", follow_redirects=False)
    assert ahead.status_code == 303
    assert ahead.headers["location"] == f"/t/{seq[0].token}?notice=in-order"
    assert client.get(f"/api/v1/trials/{seq[2].token}").status_code == 409
    r = me.post_json(f"/api/v1/trials/{seq[2].token}/rating", rating_payload())
    assert r.status_code == 409


def test_without_back_navigation_answered_trials_are_locked(
    db: Session, raters: list[User], study: Study, login, client: TestClient
) -> None:
    me = login(raters[0])
    seq = trials_of(db, study, raters[0])
    assert me.post_json(f"/api/v1/trials/{seq[0].token}/rating", rating_payload()).is_success
    back = client.get(f"/t/{seq[0].token}", follow_redirects=False)
    assert back.status_code == 303
    assert back.headers["location"] == f"/t/{seq[1].token}?notice=no-back"
    notice = client.get(back.headers["location"])
    assert "does not allow going back" in notice.text
    assert 'id="prev-link"' not in notice.text
    edit = me.post_json(f"/api/v1/trials/{seq[0].token}/rating", rating_payload(left_score=1))
    assert edit.status_code == 409
    assert db.scalar(select(Rating.left_score).where(Rating.trial_id == seq[0].id)) == 4


def test_back_navigation_edits_create_revisions(
    db: Session, settings: Settings, raters: list[User], login, client: TestClient
) -> None:
    study = make_open_study(db, settings.data_dir, raters=raters[:1], allow_back=True)
    me = login(raters[0])
    seq = trials_of(db, study, raters[0])
    for trial in seq[:2]:
        assert me.post_json(f"/api/v1/trials/{trial.token}/rating", rating_payload()).is_success
    page = client.get(f"/t/{seq[2].token}")
    assert f'href="/t/{seq[1].token}"' in page.text  # "Previous"

    old = client.get(f"/t/{seq[0].token}")
    assert old.status_code == 200
    assert "editing a saved answer" in old.text
    assert 'name="highlight:left" value="4" checked' in old.text
    assert f'href="/t/{seq[1].token}"' in old.text  # "Next" up to the resume point

    edit = me.post_json(
        f"/api/v1/trials/{seq[0].token}/rating",
        rating_payload(left_score=1, right_score=5, preference="right", comment="changed"),
    )
    assert edit.status_code == 200, edit.text
    assert edit.json()["revision"] == 2
    assert edit.json()["next_url"] == f"/t/{seq[2].token}"
    rating = db.scalar(select(Rating).where(Rating.trial_id == seq[0].id))
    assert rating is not None
    db.refresh(rating)
    assert (rating.left_score, rating.right_score, rating.preference, rating.revision) == (
        1,
        5,
        "right",
        2,
    )
    revs = db.scalars(
        select(RatingRevision)
        .where(RatingRevision.trial_id == seq[0].id)
        .order_by(RatingRevision.revision)
    ).all()
    assert [(r.revision, r.left_score, r.comment) for r in revs] == [(1, 4, ""), (2, 1, "changed")]


def test_finishing_leads_to_the_end_page(
    db: Session, raters: list[User], study: Study, login, client: TestClient
) -> None:
    me = login(raters[0])
    seq = trials_of(db, study, raters[0])
    last = None
    for trial in seq:
        last = me.post_json(f"/api/v1/trials/{trial.token}/rating", rating_payload())
    assert last is not None and last.json()["done"] is True
    assert last.json()["next_url"] == f"/rate/{study.id}/done"
    r = client.get(f"/rate/{study.id}", follow_redirects=False)
    assert r.headers["location"] == f"/rate/{study.id}/done"
    done = client.get(f"/rate/{study.id}/done")
    assert done.status_code == 200 and "You have rated all 4 trials" in done.text
    assert client.get("/api/v1/trials/next").json() == {
        "done": True,
        "study": {"id": study.id, "name": study.name},
        "total": 4,
        "answered": 4,
        "done_url": f"/rate/{study.id}/done",
    }


def test_only_raters_reach_rater_pages(
    raters: list[User], study: Study, make_user, login, client: TestClient
) -> None:
    assert client.get("/rate", follow_redirects=False).headers["location"].startswith("/login")
    assert client.get("/api/v1/trials/next").status_code == 401
    login(make_user("researcher", password=None))
    assert client.get("/rate").status_code == 403
    assert client.get("/api/v1/trials/next").status_code == 403
