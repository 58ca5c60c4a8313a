"""Analysis: service, API, page, standalone report, figures; incomplete and empty studies."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.config import Settings
from app.models import Study, User
from app.services.results.analysis import EMPTY_MESSAGE, analyze_study
from app.services.results.export import export_study
from tests.app.analysis_helpers import add_repeats, default_rule, make_rated_study, rate
from tests.factories import make_open_study

N_IMAGES = 8


@pytest.fixture()
def raters(make_user: Callable[..., User]) -> list[User]:
    return [make_user("rater", f"reader{i}") for i in range(3)]


@pytest.fixture()
def researcher(make_user: Callable[..., User]) -> User:
    return make_user("researcher", "investigator")


def test_analysis_numbers_follow_the_ratings(
    db: Session, settings: Settings, raters: list[User]
) -> None:
    study = make_rated_study(db, settings.data_dir, raters, n_images=N_IMAGES)
    a = analyze_study(db, study.id, n_boot=200)
    pairs = [default_rule(r, c) for r in range(3) for c in range(N_IMAGES)]
    std = np.array([p[0] for p in pairs], float)
    adv = np.array([p[1] for p in pairs], float)
    item = a["items"][0]
    desc = {d["arm"]: d for d in item["descriptives"]}
    assert desc["standard"]["n"] == 24 and desc["standard"]["mean"] == pytest.approx(std.mean())
    assert desc["dual-BN clean"]["sd"] == pytest.approx(adv.std(ddof=1))
    comp = item["comparisons"][0]
    assert comp["difference"] == "dual-BN clean - standard"
    rc = comp["rater_case"]
    assert rc["n"] == 24 and rc["mean_diff"] == pytest.approx((adv - std).mean())
    assert rc["wilcoxon"]["n_zero"] == int(np.sum(adv == std))
    assert rc["rank_biserial"]["r"] == pytest.approx(1.0)  # no negative differences
    assert len(comp["per_rater"]) == 3
    pref = a["preferences"][0]
    assert pref["counts"] == {
        "standard": 0,
        "dual-BN clean": int(np.sum(adv > std)),
        "none": int(np.sum(adv == std)),
    }
    assert item["mixed_model"]["fixed"][1]["estimate"] == pytest.approx(
        (adv - std).mean(), abs=1e-6
    )
    assert a["study"]["n_raters"] == 3 and a["study"]["n_cases"] == N_IMAGES
    assert "3 raters each read 8 cases" in a["methods"]
    assert a["warnings"] == ["the study is open: results are provisional."]
    assert a["empty"] is False


def test_incomplete_raters_are_analysed_on_what_exists(
    db: Session, settings: Settings, raters: list[User]
) -> None:
    study = make_rated_study(db, settings.data_dir, raters, n_images=N_IMAGES, limit={"reader2": 3})
    a = analyze_study(db, study.id, n_boot=100)
    assert any(w.startswith("rater reader2 completed 3 of 8 trials") for w in a["warnings"])
    assert a["items"][0]["comparisons"][0]["rater_case"]["n"] == 8 + 8 + 3
    per_rater = {r["rater"]: r["n"] for r in a["items"][0]["comparisons"][0]["per_rater"]}
    assert per_rater == {"reader0": 8, "reader1": 8, "reader2": 3}
    agreement = a["items"][0]["agreement"]["per_arm"]["standard"]
    assert agreement["n_units"] == N_IMAGES and agreement["n_complete_units"] == 3


def test_repeats_feed_intra_rater_agreement_only(
    db: Session, settings: Settings, raters: list[User]
) -> None:
    study = make_rated_study(db, settings.data_dir, raters, n_images=N_IMAGES)
    add_repeats(db, study, raters[0], 4)
    rate(db, study, raters)  # same rule: repeats agree perfectly
    a = analyze_study(db, study.id, n_boot=100)
    item = a["items"][0]
    assert item["comparisons"][0]["rater_case"]["n"] == 24  # repeats excluded
    intra = item["intra_rater"]
    assert intra["n_repeat_pairs"] == 8
    assert intra["pooled"]["kappa_quadratic"] == pytest.approx(1.0)
    assert intra["preference_consistency"] == {"n": 4, "same_choice": 1.0}


def test_empty_study_gives_a_clear_message(
    client: TestClient,
    db: Session,
    settings: Settings,
    raters: list[User],
    researcher: User,
    api_headers: Callable[[User], dict[str, str]],
    login: Callable[[User], object],
) -> None:
    study = make_open_study(db, settings.data_dir, raters=raters, n_images=3, size=32)
    a = analyze_study(db, study.id)
    assert a["empty"] is True and a["message"] == EMPTY_MESSAGE
    assert EMPTY_MESSAGE in a["warnings"]
    assert a["items"][0]["n_scores"] == 0 and a["preferences"] == []
    draft = Study(name="draft without arms or trials")
    db.add(draft)
    db.flush()
    bare = analyze_study(db, draft.id)
    assert bare["empty"] is True and "fewer than two arms" in " ".join(bare["warnings"])
    assert export_study(db, draft.id, "csv")[0].startswith(b"study_id,")
    rated = make_rated_study(db, settings.data_dir, raters, n_images=2)
    full = analyze_study(db, rated.id, n_boot=20)
    assert set(a) == set(full) and set(a["items"][0]) == set(full["items"][0])  # stable keys
    r = client.get(f"/api/v1/studies/{study.id}/analysis", headers=api_headers(researcher))
    assert r.status_code == 200 and r.json()["empty"] is True
    login(researcher)
    page = client.get(f"/studies/{study.id}/analysis")
    assert page.status_code == 200
    assert "nothing to analyse" in page.text
    assert client.get(f"/studies/{study.id}/report.html").status_code == 200


@pytest.mark.slow
def test_analysis_api_page_report_and_figures(
    client: TestClient,
    db: Session,
    settings: Settings,
    raters: list[User],
    researcher: User,
    api_headers: Callable[[User], dict[str, str]],
    login: Callable[[User], object],
) -> None:
    study = make_rated_study(db, settings.data_dir, raters, n_images=N_IMAGES)
    api = client.get(f"/api/v1/studies/{study.id}/analysis", headers=api_headers(researcher))
    assert api.status_code == 200
    body = api.json()
    assert {"study", "items", "preferences", "warnings", "methods", "progress"} <= set(body)
    # Raters never see the unblinded analysis, in the API or the pages.
    assert (
        client.get(
            f"/api/v1/studies/{study.id}/analysis", headers=api_headers(raters[0])
        ).status_code
        == 403
    )
    login(raters[0])
    assert client.get(f"/studies/{study.id}/analysis").status_code == 403
    assert client.get(f"/studies/{study.id}/report.html").status_code == 403

    login(researcher)
    page = client.get(f"/studies/{study.id}/analysis")
    assert page.status_code == 200
    for text in (
        "Wilcoxon",
        "dual-BN clean",
        "standard-resnet18",
        "Krippendorff",
        "ICC(2,1)",
        "data:image/png;base64,",
        f"/api/v1/studies/{study.id}/export?format=csv",
    ):
        assert text in page.text

    report = client.get(f"/studies/{study.id}/report.html")
    assert report.status_code == 200
    assert "attachment" in report.headers["content-disposition"]
    html = report.text
    # likert, forest, preference; no picture of the agreement table (the table is on the page)
    assert html.count("data:image/png;base64,") >= 3
    assert "agreement-highlight" not in html
    # Standalone: no stylesheet, script or image fetched from anywhere.
    assert not re.search(r'(src|href)="(/|https?:)', html)
    assert "3 raters each read 8 cases" in html and "Pratt" in html

    png = client.get(f"/studies/{study.id}/analysis/figures/likert-highlight.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    svg = client.get(f"/studies/{study.id}/analysis/figures/forest-highlight-0.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert b"reader1" in svg.content  # text kept as text
    assert client.get(f"/studies/{study.id}/analysis/figures/nope.png").status_code == 404
    assert (
        client.get(f"/studies/{study.id}/analysis/figures/likert-highlight.gif").status_code == 404
    )
