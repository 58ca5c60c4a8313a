"""Readers-and-cases-random analyses through the public surface: API JSON, page, report, CLI;
pre-registration; R present (CI) and absent."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.cli.main import main
from app.config import Settings
from app.models import User
from app.services.results.analysis import analyze_study
from app.services.results.report import render_report
from app.services.study.spec import SaliencySpec
from app.stats.clmm_r import INSTALL_HINT
from tests.app.analysis_helpers import add_repeats, make_rated_study, rate
from tests.factories import make_open_study

HAVE_R = shutil.which("Rscript") is not None or os.environ.get("CI") == "true"


@pytest.fixture()
def raters(make_user: Callable[..., User]) -> list[User]:
    return [make_user("rater", f"reader{i}") for i in range(4)]


@pytest.fixture()
def researcher(make_user: Callable[..., User]) -> User:
    return make_user("researcher", "investigator")


def test_api_has_mrmc_vgc_two_way_power_and_quality_without_r(
    client: TestClient,
    db: Session,
    settings: Settings,
    raters: list[User],
    researcher: User,
    api_headers: Callable[[User], dict[str, str]],
    login: Callable[[User], object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RADSAL_RSCRIPT", "")  # R absent: everything else must still work
    study = make_rated_study(db, settings.data_dir, raters, n_images=10)
    r = client.get(f"/api/v1/studies/{study.id}/analysis", headers=api_headers(researcher))
    assert r.status_code == 200, r.text
    body = r.json()
    item = body["items"][0]
    rv = item["reviewer"]
    (mrmc,) = rv["mrmc"]["comparisons"]
    assert mrmc["difference"] == "dual-BN clean - standard" and mrmc["estimate"] > 0
    assert mrmc["ci_low"] < mrmc["estimate"] < mrmc["ci_high"] and 0 <= mrmc["p_value"] <= 1
    assert rv["mrmc"]["n_readers"] == 4 and rv["mrmc"]["n_cases"] == 10
    (vgc,) = rv["vgc"]
    assert vgc["auc"] > 0.5 and len(vgc["per_rater"]) == 4 and vgc["ci_low"] is not None
    (tw,) = rv["two_way"]["comparisons"]
    assert tw["mean_diff"]["estimate"] == pytest.approx(mrmc["estimate"])
    assert rv["power"]["grid"] and rv["power"]["components"]["source"].startswith("estimated")
    assert {q["rater"] for q in body["quality"]["raters"]} == {f"reader{i}" for i in range(4)}
    clmm = item["clmm"]
    assert clmm["status"] == "unavailable" and INSTALL_HINT in clmm["message"]
    pre = body["preregistration"]
    assert pre["plan"]["registered"] is False and pre["plan"]["primary_analysis"] == "or_mrmc"
    assert pre["outcome"]["estimate"] == pytest.approx(mrmc["estimate"])
    assert "No analysis plan was registered" in body["methods"]
    assert "Obuchowski" in body["methods"] and "two-way bootstrap" in body["methods"]

    login(researcher)
    page = client.get(f"/studies/{study.id}/analysis")
    assert page.status_code == 200
    for text in (
        "OR-MRMC",
        "AUC<sub>VGC</sub>",
        "Two-way bootstrap",
        "Power of the next study",
        "Rater quality flags",
        "Primary analysis",
        INSTALL_HINT,
    ):
        assert text in page.text, text
    report = client.get(f"/studies/{study.id}/report.html")
    assert report.status_code == 200
    assert "AUC<sub>VGC</sub>" in report.text and INSTALL_HINT in report.text
    fig = client.get(f"/studies/{study.id}/analysis/figures/vgc-highlight-0.png")
    assert fig.status_code == 200 and fig.content.startswith(b"\x89PNG")
    fig = client.get(f"/studies/{study.id}/analysis/figures/power-highlight.svg")
    assert fig.status_code == 200 and b"readers" in fig.content


def test_bad_input_gives_messages_in_each_section(
    client: TestClient,
    db: Session,
    settings: Settings,
    raters: list[User],
    researcher: User,
    api_headers: Callable[[User], dict[str, str]],
) -> None:
    # One rater, all maps scored the same: every reviewer section says why it has no number.
    study = make_rated_study(
        db, settings.data_dir, raters[:1], n_images=4, rule=lambda r, c: (3, 3)
    )
    r = client.get(f"/api/v1/studies/{study.id}/analysis", headers=api_headers(researcher))
    assert r.status_code == 200, r.text
    item = r.json()["items"][0]
    rv = item["reviewer"]
    assert rv["mrmc"]["comparisons"] == [] and "at least 2 readers" in rv["mrmc"]["note"]
    assert "one rater" in rv["vgc"][0]["note"]
    assert "at least two readers" in rv["two_way"]["note"]
    assert rv["power"]["grid"] == [] and rv["power"]["note"]
    assert item["clmm"]["status"] in ("skipped", "unavailable") and item["clmm"]["message"]


def test_preregistration_is_fixed_before_opening_and_reported(
    client: TestClient,
    db: Session,
    settings: Settings,
    raters: list[User],
    researcher: User,
    api_headers: Callable[[User], dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RADSAL_RSCRIPT", "")
    study = make_open_study(db, settings.data_dir, raters=raters, n_images=6, size=32)
    headers = api_headers(researcher)
    plan = {"primary_analysis": "vgc", "alpha": 0.01}
    late = client.patch(
        f"/api/v1/studies/{study.id}", json={"analysis_plan": plan}, headers=headers
    )
    assert late.status_code == 409 and "pre-registered" in late.text
    study.status = "draft"
    study.saliency = SaliencySpec().model_dump()  # the factory's settings are not a full spec
    db.flush()
    bad = client.patch(
        f"/api/v1/studies/{study.id}",
        json={"analysis_plan": {"primary_analysis": "magic"}},
        headers=headers,
    )
    assert bad.status_code == 422
    ok = client.patch(f"/api/v1/studies/{study.id}", json={"analysis_plan": plan}, headers=headers)
    assert ok.status_code == 200, ok.text
    stored = ok.json()["analysis_plan"]
    assert stored["primary_analysis"] == "vgc" and stored["alpha"] == 0.01
    assert stored["registered_at"]
    db.refresh(study)  # the API wrote through its own session
    study.status = "open"
    db.flush()
    rate(db, study, raters)
    a = analyze_study(db, study.id, n_boot=100)
    pre = a["preregistration"]
    assert pre["plan"]["registered"] is True and pre["outcome"]["measure"] == "AUC_VGC"
    assert pre["outcome"]["estimate"] == a["items"][0]["reviewer"]["vgc"][0]["auc"]
    assert "registered on" in a["methods"] and "all other analyses are secondary" in a["methods"]
    assert a["study"]["analysis_plan"]["primary_analysis"] == "vgc"
    html = render_report(a)
    assert 'Visual grading characteristics (VGC) <span class="role primary">primary</span>' in html
    assert 'OR-MRMC of the mean score difference <span class="role muted">(secondary)' in html
    assert "pre-registered 20" in html and "Every other test in this report is secondary" in html


@pytest.mark.skipif(not HAVE_R, reason=f"Rscript not installed ({INSTALL_HINT})")
def test_clmm_is_fitted_by_r_in_the_background_then_cached(
    client: TestClient,
    db: Session,
    settings: Settings,
    raters: list[User],
    researcher: User,
    api_headers: Callable[[User], dict[str, str]],
    login: Callable[[User], object],
) -> None:
    import time

    study = make_rated_study(db, settings.data_dir, raters, n_images=8)
    url = f"/api/v1/studies/{study.id}/analysis"
    first = client.get(url, headers=api_headers(researcher))
    assert first.status_code == 200, first.text
    clmm = first.json()["items"][0]["clmm"]
    assert clmm["status"] == "running" and "background" in clmm["message"]  # never waits for R
    deadline = time.monotonic() + 300
    while clmm["status"] == "running" and time.monotonic() < deadline:
        time.sleep(1)
        body = client.get(url, headers=api_headers(researcher)).json()
        clmm = body["items"][0]["clmm"]
    assert clmm["status"] in ("ok", "partial"), clmm["message"]
    assert clmm["cached"] is True  # read back from the cache, not refitted
    (effect,) = clmm["primary"]["arm_effects"]
    assert effect["odds_ratio"] > 1 and effect["ci_low"] < effect["odds_ratio"] < effect["ci_high"]
    assert f"R {clmm['software']['R']}" in body["methods"]
    login(researcher)
    page = client.get(f"/studies/{study.id}/analysis")
    assert "Odds ratio [95% CI]" in page.text and "sensitivity: score ~ arm" in page.text


@pytest.mark.slow
def test_power_and_analyze_commands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.auth.passwords import hash_password
    from app.config import get_settings
    from app.db import make_engine, make_sessionmaker
    from app.migrate import upgrade_database

    url = f"sqlite:///{tmp_path / 'cli.sqlite'}"
    engine = make_engine(url)
    upgrade_database(engine)
    db = make_sessionmaker(engine)()
    users = [
        User(username=f"r{i}", role="rater", password_hash=hash_password("x" * 12))
        for i in range(3)
    ]
    db.add_all(users)
    db.flush()
    study = make_open_study(db, tmp_path / "data", raters=users, n_images=8, size=32, name="Pilot")
    rate(db, study, users)
    add_repeats(db, study, users[0], 2)
    db.commit()
    db.close()
    engine.dispose()
    monkeypatch.setenv("RADSAL_DATABASE_URL", url)
    monkeypatch.setenv("RADSAL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RADSAL_RSCRIPT", "")
    get_settings.cache_clear()
    try:
        assert (
            main(
                [
                    "power",
                    "Pilot",
                    "--readers",
                    "3,6",
                    "--cases",
                    "20,80",
                    "--n-sim",
                    "100",
                    "--json",
                ]
            )
            == 0
        )
        out = json.loads(capsys.readouterr().out)
        assert [(g["readers"], g["cases"]) for g in out["grid"]] == [
            (3, 20),
            (3, 80),
            (6, 20),
            (6, 80),
        ]
        assert out["effect_source"] == "observed in this study" and out["seed"]
        assert (
            main(
                [
                    "power",
                    "--reader-var",
                    "0.05",
                    "--case-var",
                    "0.3",
                    "--residual-var",
                    "0.6",
                    "--effect",
                    "0.4",
                    "--readers",
                    "4",
                    "--cases",
                    "50,200",
                    "--n-sim",
                    "200",
                ]
            )
            == 0
        )
        text = capsys.readouterr().out
        assert "readers \\ cases" in text and "stated" in text
        assert main(["power", "--reader-var", "0.05"]) == 2
        assert "--residual-var" in capsys.readouterr().err
        assert main(["analyze", "Pilot", "--json", "--n-boot", "50"]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["items"][0]["reviewer"]["mrmc"]["comparisons"]
        assert result["items"][0]["clmm"]["status"] == "unavailable"
        assert main(["analyze", "Pilot", "--n-boot", "50"]) == 0
        text = capsys.readouterr().out
        assert "OR-MRMC" in text and "VGC" in text and INSTALL_HINT in text
    finally:
        get_settings.cache_clear()


def test_study_page_shows_quality_flags_and_plan(
    client: TestClient,
    db: Session,
    settings: Settings,
    raters: list[User],
    researcher: User,
    login: Callable[[User], object],
) -> None:
    # reader0 gives every map the same score: a straight-liner.
    study = make_rated_study(
        db,
        settings.data_dir,
        raters,
        n_images=10,
        rule=lambda r, c: (3, 3) if r == 0 else (1 + (c + r) % 4, 2 + (c + r) % 4),
    )
    study.analysis_plan = {
        "primary_analysis": "clmm",
        "alpha": 0.05,
        "item": None,
        "registered_at": "2026-01-02T03:04:05+00:00",
    }
    db.flush()
    login(researcher)
    page = client.get(f"/studies/{study.id}")
    assert page.status_code == 200
    assert "straight-lining" in page.text and "Quality flags" in page.text
    assert "Pre-registered primary analysis: <strong>clmm</strong>" in page.text
