"""Practice, catch, flags, confidence, blinding check and localisation, from the rater's answer
to the export and the analysis (issue 15). Answers go through the rating service; bad ones are
refused and change nothing."""

from __future__ import annotations

import io
from collections.abc import Callable

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import Conflict, Invalid
from app.models import Rating, Study, Trial, User
from app.services.reading.rating import RatingSubmission, submit_rating
from app.services.results.analysis import analyze_study
from app.services.results.export import export_study
from app.services.study.spec import DEFAULT_ITEMS
from tests.factories import make_open_study

N_IMAGES = 8
EXTRA_ITEMS = [
    {"key": "conf", "kind": "confidence", "question": "How confident are you?", "required": True},
    {"key": "guess", "kind": "blinding", "question": "Which map came from the robust model?",
     "required": True, "when": "trial", "target_arm": 1},
    {"key": "region", "kind": "localise", "question": "Mark the region that supports the finding",
     "required": True},
]  # fmt: skip
BOX = {"shape": "box", "x0": 0.2, "y0": 0.2, "x1": 0.6, "y1": 0.7}


@pytest.fixture()
def raters(make_user: Callable[..., User]) -> list[User]:
    return [make_user("rater", f"qc{i}") for i in range(2)]


@pytest.fixture()
def study(db: Session, settings: Settings, raters: list[User]) -> Study:
    study = make_open_study(db, settings.data_dir, raters=raters, n_images=N_IMAGES)
    study.items = [dict(i) for i in DEFAULT_ITEMS] + [dict(i) for i in EXTRA_ITEMS]
    study.saliency = {**(study.saliency or {}), "target": "pneumonia"}
    arms = sorted(study.arms, key=lambda a: a.position)
    for rater in raters:
        trials = _trials(db, study, rater)
        trials[0].protocol = {"phase": "practice"}
        trials[1].protocol = {"catch": "same", "catch_arm": arms[0].id, "real_side": None}
        real_side = "left" if trials[2].left_arm_id == arms[1].id else "right"
        trials[2].protocol = {
            "catch": "randomised",
            "catch_arm": arms[1].id,
            "real_side": real_side,
        }
    db.flush()
    return study


def _trials(db: Session, study: Study, rater: User) -> list[Trial]:
    return list(
        db.scalars(
            select(Trial)
            .where(Trial.study_id == study.id, Trial.rater_id == rater.id)
            .order_by(Trial.position)
        )
    )


def _answer(trial: Trial, study: Study, **over: object) -> RatingSubmission:
    arms = {a.id: a.position for a in study.arms}
    robust_left = arms[trial.left_arm_id] == 1
    body: dict[str, object] = {
        "active_ms": 3000,
        "left_score": 4 if robust_left else 2,
        "right_score": 2 if robust_left else 4,
        "preference": "left" if robust_left else "right",
        "answers": {"conf": 4, "guess": "left" if robust_left else "right", "region": BOX},
    }
    body.update(over)
    return RatingSubmission(**body)  # type: ignore[arg-type]


def _rate_all(db: Session, study: Study, raters: list[User]) -> None:
    for rater in raters:
        for trial in _trials(db, study, rater):
            practice = (trial.protocol or {}).get("phase") == "practice"
            answers = {"conf": 3, "region": BOX} if practice else None
            if rater is raters[1] and trial.position == N_IMAGES - 1:
                sub = RatingSubmission(
                    active_ms=900, flag={"reason": "unreadable", "note": "blurred"}
                )
            elif answers is not None:
                sub = _answer(trial, study, answers=answers, practice=True)
            else:
                sub = _answer(trial, study)
            submit_rating(db, rater, trial.token, sub)
    db.flush()


def test_export_keeps_practice_catch_and_flags_labelled(
    db: Session, study: Study, raters: list[User]
) -> None:
    _rate_all(db, study, raters)
    body, _, _ = export_study(db, study.id, "csv")
    long = pd.read_csv(io.BytesIO(body))
    per_trial = long.drop_duplicates("trial")
    assert per_trial["trial_kind"].value_counts().to_dict() == {
        "main": 2 * (N_IMAGES - 3),
        "practice": 2,
        "catch_same": 2,
        "catch_randomised": 2,
    }
    assert set(per_trial.loc[per_trial["trial_kind"] == "practice", "phase"]) == {"practice"}
    assert not per_trial.loc[per_trial["trial_kind"] != "main", "analysed"].any()
    flagged = per_trial[per_trial["flag"].notna()]
    assert list(flagged["flag"]) == ["unreadable"] and not flagged["analysed"].any()
    assert per_trial.loc[per_trial["analysed"], "confidence"].eq(4).all()
    assert set(per_trial.loc[per_trial["analysed"], "blinding_guess"]) <= {"left", "right"}
    # catch rows name the maps actually shown
    same = long[long["trial_kind"] == "catch_same"]
    assert set(same["arm"]) == {"standard"}
    rand = long[long["trial_kind"] == "catch_randomised"]
    assert set(rand["arm"]) == {"dual-BN clean", "dual-BN clean [randomised weights]"}


def test_analysis_excludes_qc_trials_and_reports_catch_blinding_localisation(
    db: Session, study: Study, raters: list[User], settings: Settings
) -> None:
    _rate_all(db, study, raters)
    a = analyze_study(db, study.id, n_boot=200, data_dir=settings.data_dir)
    analysed = 2 * (N_IMAGES - 3) - 1  # one flagged case
    assert a["protocol"]["n_analysed"] == analysed
    item = a["items"][0]
    assert item["n_scores"] == 2 * analysed, "practice, catch and flagged trials never analysed"
    assert a["protocol"]["practice"] == {"n_trials": 2, "n_rated": 2}
    conf = a["protocol"]["confidence"]
    assert conf["n"] == analysed and conf["mean"] == 4.0
    assert [r["rater"] for r in conf["per_rater"]] == ["qc0", "qc1"]
    assert [f["reason"] for f in a["protocol"]["flags"]] == ["unreadable"]
    assert a["protocol"]["flags"][0]["note"] == "blurred"
    catch = a["protocol"]["catch"]
    assert [r["rater"] for r in catch["per_rater"]] == ["qc0", "qc1"]
    for r in catch["per_rater"]:
        assert r["n_same"] == 1 and r["n_randomised"] == 1
        assert r["real_scored_higher"]["rate"] == 1.0  # robust arm scored 4 vs 2
    (blinding,) = a["protocol"]["blinding"]
    result = blinding["result"]
    assert blinding["target_arm"] == "dual-BN clean" and blinding["chance"] == 0.5
    assert result["correct"]["k"] == result["correct"]["n"] == analysed
    assert result["correct"]["ci_low"] > 0.5 and result["correct"]["p_value"] < 0.01
    assert a["blinding"] == result, "the top-level blinding check is filled in"
    loc = a["localisation"]
    assert {r["arm"] for r in loc["per_arm"]} == {"standard", "dual-BN clean"}
    assert all(r["n"] == analysed for r in loc["per_arm"])
    assert all(0.0 <= r["energy_inside"] <= 1.0 for r in loc["per_arm"])
    assert {c["metric"] for c in loc["comparisons"]} == {
        "energy_inside",
        "pointing_hit",
        "iou_top_k",
    }
    for phrase in ("practice trials with feedback", "Catch trials", "guessing accuracy",
                   "pointing game", "flagged by raters"):  # fmt: skip
        assert phrase in a["methods"], phrase


@pytest.mark.parametrize(
    ("over", "where"),
    [
        ({"answers": {"conf": 4, "guess": "left", "region": {**BOX, "x1": 1.4}}}, "answers.region"),
        (
            {
                "answers": {
                    "conf": 4,
                    "guess": "left",
                    "region": {"shape": "polygon", "points": [[0, 0], [1, 1], [1, 0], [0, 1]]},
                }
            },
            "answers.region",
        ),
        (
            {
                "answers": {
                    "conf": 4,
                    "guess": "left",
                    "region": {"shape": "polygon", "points": [[0.5, 0.5]] * 201},
                }
            },
            "answers.region",
        ),
        ({"answers": {"conf": 9, "guess": "left", "region": BOX}}, "answers.conf"),
        ({"answers": {"conf": 4, "guess": "arm-1", "region": BOX}}, "answers.guess"),
        ({"answers": {"conf": 4, "guess": "left", "region": BOX, "mood": 3}}, "answers.mood"),
        ({"answers": {"conf": 4, "guess": "left"}}, "answers.region"),
        ({"flag": {"reason": "boring"}}, "flag.reason"),
        ({"flag": {"reason": "other"}}, "flag.note"),
    ],
)
def test_bad_answers_are_refused_and_change_nothing(
    db: Session, study: Study, raters: list[User], over: dict[str, object], where: str
) -> None:
    trials = _trials(db, study, raters[0])
    submit_rating(db, raters[0], trials[0].token, _answer(trials[0], study, practice=True,
                  answers={"conf": 3, "region": BOX}))  # fmt: skip
    before = db.scalar(select(func.count(Rating.id)))
    sub = _answer(trials[1], study, **over)
    if "flag" in over:
        sub = RatingSubmission(active_ms=10, flag=over["flag"])  # type: ignore[arg-type]
    with pytest.raises(Invalid) as info:
        submit_rating(db, raters[0], trials[1].token, sub)
    assert info.value.status_code == 422
    assert where in {".".join(e["loc"][1:]) for e in info.value.details}  # type: ignore[union-attr]
    assert db.scalar(select(func.count(Rating.id))) == before


def test_practice_and_real_answers_cannot_be_swapped(
    db: Session, study: Study, raters: list[User]
) -> None:
    trials = _trials(db, study, raters[0])
    with pytest.raises(Conflict, match="practice trial"):
        submit_rating(db, raters[0], trials[0].token, _answer(trials[0], study, practice=False))
    with pytest.raises(Conflict, match="practice trial"):  # no `practice` flag at all
        submit_rating(db, raters[0], trials[0].token, _answer(trials[0], study))
    # the blinding item is never asked on a practice trial
    with pytest.raises(Invalid) as info:
        submit_rating(db, raters[0], trials[0].token, _answer(trials[0], study, practice=True))
    assert any(e["msg"] == "This item is not asked on this trial." for e in info.value.details)  # type: ignore[union-attr]
    practice = _answer(trials[0], study, practice=True, answers={"conf": 3, "region": BOX})
    submit_rating(db, raters[0], trials[0].token, practice)
    with pytest.raises(Conflict, match="not a practice trial") as conflict:
        submit_rating(db, raters[0], trials[1].token, _answer(trials[1], study, practice=True))
    assert conflict.value.status_code == 409
    assert db.scalar(select(func.count(Rating.id))) == 1


def test_api_analysis_page_and_report_show_quality_control_and_localisation(
    db: Session,
    study: Study,
    raters: list[User],
    client: TestClient,
    login: Callable[[User], object],
    api_headers: Callable[[User], dict[str, str]],
    make_user: Callable[..., User],
) -> None:
    _rate_all(db, study, raters)
    researcher = make_user("researcher")
    api = client.get(f"/api/v1/studies/{study.id}/analysis", headers=api_headers(researcher))
    assert api.status_code == 200
    body = api.json()
    assert body["protocol"]["catch"]["per_rater"][0]["n_same"] == 1
    assert body["localisation"]["per_arm"][0]["n"] > 0, "the route scores the app's own maps"
    login(researcher)
    for url in (f"/studies/{study.id}/analysis", f"/studies/{study.id}/report.html"):
        html = client.get(url).text
        assert 'id="quality-control"' in html and 'id="catch-performance"' in html
        assert 'id="blinding-accuracy"' in html and "against chance 0.50" in html
        assert 'id="flagged-cases"' in html and "blurred" in html
        assert 'id="localisation"' in html and "Energy inside" in html
        assert 'id="confidence-summary"' in html


def test_study_page_shows_catch_performance_and_flags(
    db: Session,
    study: Study,
    raters: list[User],
    client: TestClient,
    login: Callable[[User], object],
    make_user: Callable[..., User],
) -> None:
    _rate_all(db, study, raters)
    login(make_user("researcher"))
    page = client.get(f"/studies/{study.id}").text
    assert 'id="study-quality-control"' in page and 'id="study-catch"' in page
    assert 'data-rater="qc0"' in page and 'data-rater="qc1"' in page
    assert 'id="study-flags"' in page and "unreadable" in page and "blurred" in page
