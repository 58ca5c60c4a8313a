"""The researcher's trial browser: filters by rater, case, arm, item and flag; answers and
comments unblinded; a link to each trial's preview; staff only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Rating, Study, Trial, User
from tests.app.analysis_helpers import add_repeats, rate
from tests.factories import make_open_study


def _study(db: Session, settings: Settings, make_user: Callable[..., User]) -> Study:
    raters = [make_user("rater", f"browse{i}") for i in range(2)]
    study = make_open_study(db, settings.data_dir, raters=raters, n_images=4, size=16)
    rate(db, study, raters, limit={"browse0": 4, "browse1": 2})
    add_repeats(db, study, raters[0], 1)
    first = db.scalars(
        select(Trial).where(Trial.study_id == study.id, Trial.rater_id == raters[0].id)
    ).first()
    assert first is not None
    rating = db.scalar(select(Rating).where(Rating.trial_id == first.id))
    assert rating is not None
    rating.comment = "map misses the lower lobe"
    db.flush()
    return study


def test_api_filters_and_shows_answers(
    db: Session, settings: Settings, make_user: Callable[..., User], client: TestClient,
    api_headers: Callable[[User], dict[str, str]],
) -> None:  # fmt: skip
    study = _study(db, settings, make_user)
    headers = api_headers(make_user("researcher"))
    url = f"/api/v1/studies/{study.id}/trials"
    everything = client.get(url, headers=headers).json()
    assert everything["total"] == 4 + 4 + 1
    assert everything["raters"] == ["browse0", "browse1"]
    assert set(everything["arms"].values()) == {"standard", "dual-BN clean"}

    def total(**params: Any) -> int:
        got = client.get(url, params=params, headers=headers)
        assert got.status_code == 200, got.text
        return int(got.json()["total"])

    assert total(rater="browse1") == 4
    assert total(rater="browse1", flag="rated") == 2
    assert total(flag="unrated") == 2 + 1
    assert total(flag="repeat") == 1
    assert total(flag="commented") == 1
    case = study.images[0].image_id
    assert total(case=str(case)) == sum(t["case"] == case for t in everything["trials"]) >= 2
    arm_id = next(iter(everything["arms"]))
    assert total(arm=arm_id) == 9  # every trial shows both arms
    by_item = client.get(url, params={"item": "highlight"}, headers=headers).json()
    assert by_item["total"] == 6 and all(t["rated"] for t in by_item["trials"])
    commented = client.get(url, params={"flag": "commented"}, headers=headers).json()["trials"][0]
    assert commented["comment"] == "map misses the lower lobe"
    assert set(commented["scores"]["highlight"]) == {"standard", "dual-BN clean"}
    assert commented["preview_url"] == f"/studies/{study.id}/preview/{commented['id']}"
    bad = client.get(url, params={"flag": "sparkly"}, headers=headers)
    assert bad.status_code == 422 and "Unknown flag" in bad.json()["detail"]
    rater = make_user("rater", "nosy")
    assert client.get(url, headers=api_headers(rater)).status_code == 403


def test_page_shows_comments_and_links_to_previews(
    db: Session, settings: Settings, make_user: Callable[..., User],
    login: Callable[[User], Any],
) -> None:  # fmt: skip
    study = _study(db, settings, make_user)
    researcher = login(make_user("researcher"))
    page = researcher.client.get(f"/studies/{study.id}/trials?flag=commented")
    assert page.status_code == 200
    assert "map misses the lower lobe" in page.text
    assert f'href="/studies/{study.id}/preview/' in page.text
    assert 'id="trial-filters"' in page.text
    empty = researcher.client.get(f"/studies/{study.id}/trials?rater=browse1&flag=repeat")
    assert "No trial matches" in empty.text
