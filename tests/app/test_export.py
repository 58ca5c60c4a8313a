"""Exports: tidy long / wide CSV, JSON, MRMC, R script; API, permissions, round trip."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Checkpoint, Study, User
from app.services.results.analysis import analyze_study
from app.services.results.export import export_study
from app.stats.frames import preferences_from_tidy
from app.stats.summary import analyze
from tests.app.analysis_helpers import add_repeats, default_rule, make_rated_study, rate
from tests.factories import make_open_study

N_IMAGES = 8


@pytest.fixture()
def raters(make_user: Callable[..., User]) -> list[User]:
    return [make_user("rater", f"reader{i}") for i in range(3)]


@pytest.fixture()
def study(db: Session, settings: Settings, raters: list[User]) -> Study:
    return make_rated_study(db, settings.data_dir, raters, n_images=N_IMAGES)


def _csv(db: Session, study: Study, fmt: str = "csv") -> pd.DataFrame:
    body, media, name = export_study(db, study.id, fmt)
    assert media.startswith("text/csv")
    assert name.endswith(".csv")
    return pd.read_csv(io.BytesIO(body))


def test_tidy_long_maps_sides_to_arms(db: Session, study: Study, raters: list[User]) -> None:
    long = _csv(db, study)
    assert len(long) == 3 * N_IMAGES * 2  # rater x case x arm, one Likert item
    assert set(long["arm"]) == {"standard", "dual-BN clean"}
    assert set(long["side"]) == {"left", "right"}
    assert long.groupby("trial").size().eq(2).all()
    # Scores follow the arm, not the side it was shown on.
    pos = {si.image_id: si.position for si in study.images}
    for row in long.itertuples():
        r_index = int(row.rater.removeprefix("reader"))
        std, adv = default_rule(r_index, pos[int(row.case)])
        assert row.score == (std if row.arm == "standard" else adv)
    sha = {c.name: c.sha256 for c in db.query(Checkpoint).all()}
    assert (
        long.loc[long["arm"] == "standard", "checkpoint_sha256"] == sha["standard-resnet18"]
    ).all()
    assert (long["seed"] == study.seed).all() and (long["saliency_method"] == "gradient").all()
    assert set(long["label_pneumonia"]) == {0, 1}
    # Counterbalanced: each arm is on the left in half of each rater's trials.
    left = long[long["side"] == "left"].groupby(["rater", "arm"]).size()
    assert (left == N_IMAGES // 2).all()
    assert {"active_ms", "total_ms", "rated_at", "position", "is_repeat", "preferred"} <= set(
        long.columns
    )


def test_csv_round_trip_gives_the_same_numbers(
    db: Session, study: Study, raters: list[User]
) -> None:
    add_repeats(db, study, raters[0], 3)
    rate(db, study, raters[:1], rule=default_rule)  # rates the new repeats too
    from_db = analyze_study(db, study.id, n_boot=200)
    long = _csv(db, study)
    from_csv = analyze(
        long[long["score"].notna()],
        preferences_from_tidy(long),
        arms=["standard", "dual-BN clean"],
        levels={"highlight": [1, 2, 3, 4, 5]},
        n_boot=200,
    )
    assert from_csv["items"] == from_db["items"]
    assert from_csv["preferences"] == from_db["preferences"]
    assert from_db["items"][0]["intra_rater"]["n_repeat_pairs"] == 6  # 3 trials x 2 arms


def test_wide_csv_has_readable_columns(db: Session, study: Study) -> None:
    wide = _csv(db, study, "wide")
    assert len(wide) == 3 * N_IMAGES
    for col in (
        "Rater",
        "Case",
        "Map A (left) arm",
        "highlight score: standard",
        "highlight score: dual-BN clean",
        "Preferred arm",
        "Active time (s)",
    ):
        assert col in wide.columns
    assert (wide["highlight score: dual-BN clean"] >= wide["highlight score: standard"]).all()


def test_json_has_design_and_unrated_trials(
    db: Session, settings: Settings, make_user: Callable[..., User]
) -> None:
    rater = make_user("rater", "solo")
    study = make_open_study(db, settings.data_dir, raters=[rater], n_images=4, size=32)
    rate(db, study, [rater], limit={"solo": 1})
    body, media, name = export_study(db, study.id, "json")
    doc = json.loads(body)
    assert media == "application/json" and name.endswith(".json")
    assert doc["format"] == "radsal-export/1"
    assert doc["study"]["seed"] == study.seed and doc["study"]["items"][0]["key"] == "highlight"
    assert [a["checkpoint"]["name"] for a in doc["arms"]] == [
        "standard-resnet18",
        "dualbn-resnet18",
    ]
    assert len(doc["trials"]) == 4
    rated = [t for t in doc["trials"] if t["rating"] is not None]
    assert len(rated) == 1
    assert set(rated[0]["rating"]["scores"]["highlight"]) == {"standard", "dual-BN clean"}


def test_mrmc_and_r_script(db: Session, study: Study, raters: list[User]) -> None:
    add_repeats(db, study, raters[1], 2)
    rate(db, study, raters[1:2])
    mrmc = _csv(db, study, "mrmc")
    assert list(mrmc.columns) == ["reader", "case", "modality", "score"]
    assert len(mrmc) == 3 * N_IMAGES * 2  # repeats excluded
    body, media, name = export_study(db, study.id, "r")
    script = body.decode()
    assert name.endswith("clmm.R") and media.startswith("text/plain")
    assert "fit_model(score ~ arm + (1 | rater) + (1 | case))" in script
    assert "fit_model(score ~ arm + (1 + arm | rater) + (1 | case))" in script
    assert f'option("csv", "radsal-study-{study.id}-long.csv")' in script
    assert 'option("reference", "standard")' in script and "{{" not in script


def test_export_api_permissions_and_errors(
    client: TestClient,
    db: Session,
    study: Study,
    raters: list[User],
    make_user: Callable[..., User],
    api_headers: Callable[[User], dict[str, str]],
) -> None:
    researcher = make_user("researcher")
    url = f"/api/v1/studies/{study.id}/export"
    r = client.get(url, params={"format": "csv"}, headers=api_headers(researcher))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"]
    assert r.headers["cache-control"] == "no-store"
    assert len(pd.read_csv(io.BytesIO(r.content))) == 3 * N_IMAGES * 2
    r = client.get(url, params={"format": "json"}, headers=api_headers(researcher))
    assert r.json()["study"]["id"] == study.id
    assert (
        client.get(url, params={"format": "xlsx"}, headers=api_headers(researcher)).status_code
        == 422
    )
    assert (
        client.get("/api/v1/studies/999999/export", headers=api_headers(researcher)).status_code
        == 404
    )
    # Raters never get unblinded data; anonymous callers must log in.
    assert client.get(url, headers=api_headers(raters[0])).status_code == 403
    assert client.get(url).status_code == 401


def test_ratings_posted_by_a_rater_are_exported_by_arm(
    client: TestClient,
    db: Session,
    settings: Settings,
    make_user: Callable[..., User],
    login: Callable[[User], object],
) -> None:
    from sqlalchemy import select

    from app.models import Arm, Trial
    from tests.factories import rating_payload

    rater = make_user("rater", "poster")
    study = make_open_study(db, settings.data_dir, raters=[rater], n_images=2, size=32)
    me = login(rater)
    trials = db.scalars(select(Trial).where(Trial.study_id == study.id)).all()
    for trial in trials:
        r = me.post_json(  # type: ignore[attr-defined]
            f"/api/v1/trials/{trial.token}/rating",
            rating_payload(left_score=5, right_score=1, preference="left", active_ms=1234),
        )
        assert r.status_code == 200, r.text
    long = _csv(db, study)
    labels = {a.id: a.label for a in db.scalars(select(Arm).where(Arm.study_id == study.id))}
    for trial in trials:
        rows = long[long["trial"] == trial.id].set_index("side")
        assert rows.loc["left", "arm"] == labels[trial.left_arm_id]
        assert rows.loc["left", "score"] == 5 and rows.loc["right", "score"] == 1
        assert bool(rows.loc["left", "preferred"]) and not bool(rows.loc["right", "preferred"])
        assert (rows["active_ms"] == 1234).all()
