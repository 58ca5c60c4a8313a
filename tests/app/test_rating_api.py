"""POST /api/v1/trials/{token}/rating: validation, idempotency, timing, CSRF, several items."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import AuditEvent, Rating, RatingRevision, Study, Trial, User
from tests.factories import make_open_study, rating_payload


@pytest.fixture()
def rater(make_user: Callable[..., User]) -> User:
    return make_user("rater", "scorer", None)


@pytest.fixture()
def study(db: Session, settings: Settings, rater: User) -> Study:
    return make_open_study(db, settings.data_dir, raters=[rater], n_images=3)


@pytest.fixture()
def first(db: Session, study: Study, rater: User) -> Trial:
    trial = db.scalar(
        select(Trial).where(
            Trial.study_id == study.id, Trial.rater_id == rater.id, Trial.position == 0
        )
    )
    assert trial is not None
    return trial


def count(db: Session, model: type[Rating] | type[RatingRevision], trial: Trial) -> int:
    n = db.scalar(select(func.count(model.id)).where(model.trial_id == trial.id))
    return int(n or 0)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"left_score": 6}, "scores.highlight.left"),
        ({"right_score": 0}, "scores.highlight.right"),
        ({"right_score": None}, "scores.highlight.right"),
        ({"preference": None}, "preference"),
        ({"comment": "x" * 2001}, "comment"),
        ({"active_ms": -1}, "active_ms"),
        ({"preference": "maybe"}, "preference"),
        ({"scores": {"nonsense": {"left": 1, "right": 1}}}, "scores.nonsense"),
        ({"scores": {"highlight": {"left": 2, "right": 2}}}, "left_score"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
def test_invalid_answers_are_refused_with_the_field_named(
    override: dict[str, object], field: str, db: Session, first: Trial, login, rater: User
) -> None:
    me = login(rater)
    r = me.post_json(f"/api/v1/trials/{first.token}/rating", rating_payload(**override))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["code"] == "invalid"
    assert any(field in ".".join(e["loc"]) for e in body["errors"]), body
    assert count(db, Rating, first) == 0


def test_a_valid_answer_is_stored_with_its_timing_and_audited(
    db: Session, study: Study, first: Trial, login, rater: User
) -> None:
    me = login(rater)
    assert study.design_frozen_at is None
    body = rating_payload(comment="  left map follows the opacity  ", active_ms=5200, total_ms=6100)
    r = me.post_json(f"/api/v1/trials/{first.token}/rating", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["saved"] is True and out["replayed"] is False and out["revision"] == 1
    assert (out["answered"], out["total"], out["done"]) == (1, 3, False)
    assert (out["active_ms"], out["total_ms"]) == (5200, 6100)
    rating = db.scalar(select(Rating).where(Rating.trial_id == first.id))
    assert rating is not None
    assert (rating.left_score, rating.right_score, rating.preference) == (4, 2, "left")
    assert rating.scores == {"highlight": {"left": 4, "right": 2}}
    assert rating.comment == "left map follows the opacity"
    assert (rating.active_ms, rating.total_ms, rating.rater_id) == (5200, 6100, rater.id)
    rev = db.scalar(select(RatingRevision).where(RatingRevision.trial_id == first.id))
    assert rev is not None and rev.request_id == body["request_id"] and rev.active_ms == 5200
    event = db.scalar(select(AuditEvent).where(AuditEvent.action == "rating.saved"))
    assert event is not None and event.actor_id == rater.id and event.object_id == str(first.id)
    db.refresh(study)
    assert study.design_frozen_at is not None  # the first answer freezes the design


@pytest.mark.parametrize(
    ("active", "total", "stored"),
    [(9000, 4000, (4000, 4000)), (3000, None, (3000, 3000)), (0, 0, (0, 0))],
)
def test_active_time_is_clamped_to_total_time(
    active: int,
    total: int | None,
    stored: tuple[int, int],
    db: Session,
    first: Trial,
    login,
    rater: User,
) -> None:
    me = login(rater)
    body = rating_payload(active_ms=active, total_ms=total)
    if total is None:
        body.pop("total_ms", None)
    r = me.post_json(f"/api/v1/trials/{first.token}/rating", body)
    assert r.status_code == 200, r.text
    rating = db.scalar(select(Rating).where(Rating.trial_id == first.id))
    assert rating is not None and (rating.active_ms, rating.total_ms) == stored


def test_a_retried_submission_creates_one_rating(
    db: Session, first: Trial, login, rater: User
) -> None:
    me = login(rater)
    body = rating_payload()
    r1 = me.post_json(f"/api/v1/trials/{first.token}/rating", body)
    r2 = me.post_json(f"/api/v1/trials/{first.token}/rating", {**body, "active_ms": 9999})
    assert r1.status_code == r2.status_code == 200
    assert r2.json()["replayed"] is True
    assert r2.json()["revision"] == r1.json()["revision"] == 1
    assert r2.json()["active_ms"] == 5200  # the stored revision, not the replayed body
    assert count(db, Rating, first) == 1
    assert count(db, RatingRevision, first) == 1


def test_cookie_callers_need_the_csrf_token_bearer_callers_do_not(
    db: Session, first: Trial, login, api_headers, rater: User, client: TestClient
) -> None:
    login(rater)
    url = f"/api/v1/trials/{first.token}/rating"
    assert client.post(url, json=rating_payload()).status_code == 403
    assert count(db, Rating, first) == 0
    client.cookies.clear()
    r = client.post(url, json=rating_payload(), headers=api_headers(rater))
    assert r.status_code == 200, r.text


def test_next_trial_api_serves_the_sequence_then_done(
    db: Session, study: Study, api_headers, rater: User, client: TestClient
) -> None:
    headers = api_headers(rater)
    seen: list[str] = []
    for _ in range(3):
        nxt = client.get("/api/v1/trials/next", headers=headers).json()
        assert nxt["done"] is False
        assert nxt["position"] == len(seen) + 1 and nxt["total"] == 3
        token = nxt["token"]
        assert nxt["map_urls"] == {"a": f"/t/{token}/view/a", "b": f"/t/{token}/view/b"}
        assert [i["kind"] for i in nxt["items"]] == ["likert", "preference", "comment"]
        assert nxt["study"]["instructions"]
        seen.append(nxt["token"])
        r = client.post(nxt["rating_url"], json=rating_payload(), headers=headers)
        assert r.status_code == 200
    expected = list(
        db.scalars(select(Trial.token).where(Trial.rater_id == rater.id).order_by(Trial.position))
    )
    assert seen == expected
    done = client.get(f"/api/v1/trials/next?study_id={study.id}", headers=headers).json()
    assert done["done"] is True and done["answered"] == 3


def test_a_study_with_several_likert_items_needs_every_pair(
    db: Session, settings: Settings, rater: User, api_headers, client: TestClient
) -> None:
    study = make_open_study(db, settings.data_dir, raters=[rater], n_images=2)
    study.items = [
        {"key": "focus", "kind": "likert", "question": "Focused?", "scale": 7, "required": True},
        {"key": "trust", "kind": "likert", "question": "Trust?", "scale": 3, "required": True},
        {"key": "preference", "kind": "preference", "required": False},
    ]
    db.flush()
    headers = api_headers(rater)
    nxt = client.get(f"/api/v1/trials/next?study_id={study.id}", headers=headers).json()
    assert [i.get("scale") for i in nxt["items"]] == [7, 3, None]
    url = nxt["rating_url"]
    partial = {"left_score": 7, "right_score": 1, "active_ms": 10}
    r = client.post(url, json=partial, headers=headers)
    assert r.status_code == 422
    assert {".".join(e["loc"]) for e in r.json()["errors"]} == {
        "body.scores.trust.left",
        "body.scores.trust.right",
    }
    full = {**partial, "scores": {"trust": {"left": 3, "right": 2}}}
    assert client.post(url, json=full, headers=headers).status_code == 200
    rating = db.scalar(select(Rating).join(Trial).where(Trial.token == nxt["token"]))
    assert rating is not None
    assert rating.scores == {"focus": {"left": 7, "right": 1}, "trust": {"left": 3, "right": 2}}
    assert (rating.left_score, rating.right_score, rating.preference) == (7, 1, None)
