"""The protocol on the rater's side, over HTTP (issue 15): practice labelled, catch trials
indistinguishable, the new items on the page and in the API, bad answers refused unchanged,
the flag, and which map each slot of a catch trial serves."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Rating, SaliencyMap, Study, Trial, User
from app.services.study.spec import DEFAULT_ITEMS
from app.storage import Storage
from tests.app.test_blinding import FORBIDDEN_KEYS, Crawler, canaries_for, json_keys
from tests.factories import make_open_study, rating_payload

ITEMS = [dict(i) for i in DEFAULT_ITEMS] + [
    {"key": "conf", "kind": "confidence", "question": "Confidence?", "required": True},
    {"key": "guess", "kind": "blinding", "question": "Which map came from model 2?",
     "required": True, "when": "trial", "target_arm": 1},
    {"key": "region", "kind": "localise", "question": "Mark the region", "required": True},
]  # fmt: skip
BOX = {"shape": "box", "x0": 0.1, "y0": 0.1, "x1": 0.5, "y1": 0.5}
FULL = {"conf": 3, "guess": "left", "region": BOX}


@pytest.fixture()
def setup(
    db: Session, settings: Settings, make_user: Callable[..., User]
) -> tuple[Study, User, list[Trial]]:
    me = make_user("rater", "proto_me", None)
    study = make_open_study(db, settings.data_dir, raters=[me], n_images=6, allow_back=True)
    study.items = ITEMS
    study.protocol = {"case_text": {}}
    arms = sorted(study.arms, key=lambda a: a.position)
    trials = list(db.scalars(select(Trial).where(Trial.rater_id == me.id).order_by(Trial.position)))
    study.protocol = {"case_text": {str(trials[1].image_id): "Cough for 3 weeks, febrile."}}
    trials[0].protocol = {"phase": "practice"}
    trials[2].protocol = {"catch": "same", "catch_arm": arms[1].id, "real_side": None}
    trials[3].protocol = {"catch": "randomised", "catch_arm": arms[0].id, "real_side": "right"}
    # the randomised-weights map the catch trial shows (normally made by the generation job)
    store = Storage(settings.data_dir)
    real = db.scalar(
        select(SaliencyMap).where(
            SaliencyMap.arm_id == arms[0].id, SaliencyMap.image_id == trials[3].image_id
        )
    )
    assert real is not None
    raw = io.BytesIO()
    np.save(raw, np.zeros((4, 4), np.float16))
    db.add(
        SaliencyMap(
            arm_id=arms[0].id,
            image_id=trials[3].image_id,
            target=f"{real.target}|randomised",
            raw_path=store.put_random("maps", raw.getvalue(), ".npy"),
            field_path=store.put_random(
                "maps", (settings.data_dir / real.field_path).read_bytes()[::-1], ".npy"
            ),
            prediction={},
            provenance={"variant": "randomised"},
        )
    )
    db.flush()
    return study, me, trials


def _post(account: Any, trial: Trial, **body: Any) -> Any:
    return account.post_json(f"/api/v1/trials/{trial.token}/rating", rating_payload(**body))


def test_pages_and_api_show_practice_items_and_hide_catch(
    db: Session, setup: tuple[Study, User, list[Trial]], login: Any, client: TestClient
) -> None:
    _, me, trials = setup
    account = login(me)
    nxt = client.get("/api/v1/trials/next").json()
    assert nxt["practice"] is True and nxt["token"] == trials[0].token
    assert [i["kind"] for i in nxt["items"]] == [
        "likert", "preference", "comment", "confidence", "localise",
    ], "no blinding guess on practice"  # fmt: skip
    page = client.get(f"/t/{trials[0].token}").text
    assert 'id="practice-banner"' in page and "blinding" not in page
    # practice answers must say so
    r = _post(account, trials[0], answers={"conf": 2, "region": BOX})
    assert r.status_code == 409 and "practice trial" in r.json()["detail"]
    r = _post(account, trials[0], answers={"conf": 2, "region": BOX}, practice=True)
    assert r.status_code == 200, r.text
    # the next page gives feedback on the practice answer and the case's history
    page = client.get(f"/t/{trials[1].token}").text
    assert 'id="practice-feedback"' in page and "Practice feedback" in page
    assert "Cough for 3 weeks, febrile." in page and 'id="practice-banner"' not in page
    for needle in ('class="item confidence', 'class="item blinding', 'class="localise"',
                   'id="flag-button"', "/static/js/localise.js"):  # fmt: skip
        assert needle in page
    views = {}
    for t in trials[1:4]:  # answered in order; back-navigation then shows each again
        views[t.position] = client.get(f"/api/v1/trials/{t.token}").json()
        assert _post(account, t, answers=FULL).status_code == 200
    assert all(v["practice"] is False for v in views.values())
    # a catch trial's payload has exactly the keys and shapes of an ordinary trial
    plain, same, randomised = views[1], views[2], views[3]
    shape = sorted(json_keys({k: v for k, v in plain.items() if k != "case_text"}))
    for catch in (same, randomised):
        assert sorted(json_keys({k: v for k, v in catch.items() if k != "case_text"})) == shape
        for key in json_keys(catch):
            assert not FORBIDDEN_KEYS.search(key)
        assert "catch" not in str(catch).lower() and "random" not in str(catch).lower()


def test_catch_slots_serve_the_catch_maps(
    db: Session, settings: Settings, setup: tuple[Study, User, list[Trial]], login: Any,
    client: TestClient,
) -> None:  # fmt: skip
    study, me, trials = setup
    login(me)
    arms = sorted(study.arms, key=lambda a: a.position)

    def overlay(arm_id: int, image_id: int, randomised: bool = False) -> bytes:
        maps = db.scalars(
            select(SaliencyMap).where(
                SaliencyMap.arm_id == arm_id, SaliencyMap.image_id == image_id
            )
        ).all()
        (m,) = [m for m in maps if m.target.endswith("|randomised") == randomised]
        return (settings.data_dir / str(m.field_path)).read_bytes()

    same = trials[2]
    a, b = client.get(f"/t/{same.token}/view/a"), client.get(f"/t/{same.token}/view/b")
    assert a.content == b.content == overlay(arms[1].id, same.image_id)
    assert a.headers["etag"] != b.headers["etag"], "tags stay bound to token + slot"
    rand = trials[3]
    a, b = client.get(f"/t/{rand.token}/view/a"), client.get(f"/t/{rand.token}/view/b")
    assert b.content == overlay(arms[0].id, rand.image_id), "real map on real_side (right)"
    assert a.content == overlay(arms[0].id, rand.image_id, randomised=True)
    assert len(a.content) == len(b.content)
    assert sorted(a.headers) == sorted(b.headers)
    # an ordinary trial is untouched
    plain = trials[1]
    assert client.get(f"/t/{plain.token}/view/a").content == overlay(
        plain.left_arm_id, plain.image_id
    )


@pytest.mark.parametrize(
    "answers",
    [
        {**FULL, "region": {"shape": "polygon", "points": [[0, 0], [1, 1], [1, 0], [0, 1]]}},
        {**FULL, "region": {**BOX, "y1": 1.2}},
        {**FULL, "region": {"shape": "polygon", "points": [[0.1, 0.1]] * 250}},
        {**FULL, "mood": 3},
        {**FULL, "conf": 0},
    ],
)
def test_bad_answers_get_a_clear_422_over_http_and_change_nothing(
    db: Session, setup: tuple[Study, User, list[Trial]], login: Any, answers: dict[str, Any]
) -> None:
    _, me, trials = setup
    account = login(me)
    assert (
        _post(account, trials[0], answers={"conf": 2, "region": BOX}, practice=True).status_code
        == 200
    )
    before = db.scalar(select(func.count(Rating.id)))
    r = _post(account, trials[1], answers=answers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"], "each problem is named"
    assert db.scalar(select(func.count(Rating.id))) == before


def test_flag_skips_the_case(
    db: Session, setup: tuple[Study, User, list[Trial]], login: Any
) -> None:
    _, me, trials = setup
    account = login(me)
    _post(account, trials[0], answers={"conf": 2, "region": BOX}, practice=True)
    bad = account.post_json(
        f"/api/v1/trials/{trials[1].token}/rating", {"active_ms": 5, "flag": {"reason": "boring"}}
    )
    assert bad.status_code == 422
    r = account.post_json(
        f"/api/v1/trials/{trials[1].token}/rating",
        {
            "active_ms": 5,
            "flag": {"reason": "wrong_label", "note": "labelled normal, shows consolidation"},
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["next_url"] == f"/t/{trials[2].token}"
    rating = db.scalar(select(Rating).where(Rating.trial_id == trials[1].id))
    assert rating is not None and rating.scores["_flag"]["reason"] == "wrong_label"


def test_the_blinding_crawl_covers_practice_and_catch_trials(
    db: Session, setup: tuple[Study, User, list[Trial]], login: Any, client: TestClient
) -> None:
    """The crawl of test_blinding over a study with practice and catch trials: nothing a rater
    reaches names an arm or says "catch"; tokens and URLs look alike; every slot is served."""
    study, me, trials = setup
    canaries = [*canaries_for(db, study), "randomised", "catch_arm", "real_side", '"catch"']
    account = login(me)
    crawler = Crawler(client, canaries)
    crawler.crawl("/", "/rate", "/api/v1/trials/next")
    while True:
        nxt = client.get("/api/v1/trials/next").json()
        if nxt["done"]:
            break
        answers = {"conf": 2, "region": BOX} if nxt["practice"] else FULL
        r = account.post_json(
            nxt["rating_url"], rating_payload(answers=answers, practice=nxt["practice"])
        )
        assert r.status_code == 200, r.text
        crawler.check(nxt["rating_url"], r)
        crawler.seen.discard("/api/v1/trials/next")
        crawler.crawl(nxt["page_url"], r.json()["next_url"], "/api/v1/trials/next")
    crawler.crawl(f"/rate/{study.id}/done", "/rate")
    lengths = {len(t.token) for t in trials}
    assert len(lengths) == 1, "catch and practice tokens are drawn like any other"
    for trial in trials:
        for suffix in ("", "/image.png", "/view/a", "/view/b"):
            assert f"/t/{trial.token}{suffix}" in crawler.seen
            assert crawler.responses[f"/t/{trial.token}{suffix}"].status_code == 200
