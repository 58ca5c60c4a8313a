"""The reviewer layer: primary outcome per pre-registered analysis, power stand-in, figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.stats.reviewer import analysis_plan, power_analysis_for, primary_outcome
from app.stats.reviewer_plots import power_plot, vgc_plot
from app.stats.summary import analyze


def _scores() -> pd.DataFrame:
    rng = np.random.default_rng(12)
    rows = []
    for k in range(5):
        for c in range(30):
            base = rng.normal()
            for arm, shift in (("std", 0.0), ("dual", 0.8)):
                score = int(np.clip(np.rint(3 + base + shift + rng.normal(scale=0.6)), 1, 5))
                rows.append(
                    {
                        "rater": f"r{k}",
                        "case": f"c{c}",
                        "arm": arm,
                        "item": "q",
                        "score": score,
                        "is_repeat": False,
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def item() -> dict:
    result = analyze(
        _scores(),
        pd.DataFrame(),
        arms=["std", "dual"],
        levels={"q": [1, 2, 3, 4, 5]},
        n_boot=200,
        power_sims=50,
    )
    return result["items"][0]


def test_default_plan_is_or_mrmc_and_not_registered() -> None:
    plan = analysis_plan(None)
    assert plan["registered"] is False and plan["primary_analysis"] == "or_mrmc"
    assert plan["alpha"] == 0.05
    assert analysis_plan({"primary_analysis": "vgc", "alpha": 0.01})["registered"] is True


@pytest.mark.parametrize(
    ("key", "measure"),
    [
        ("or_mrmc", "mean score difference"),
        ("vgc", "AUC_VGC"),
        ("lmm", "arm effect (score points)"),
        ("wilcoxon", "mean score difference"),
        ("wilcoxon_case_means", "mean score difference"),
    ],
)
def test_primary_outcome_picks_the_registered_number(item: dict, key: str, measure: str) -> None:
    out = primary_outcome(analysis_plan({"primary_analysis": key, "alpha": 0.05}), item)
    assert out["measure"] == measure and out["note"] is None
    assert out["ci_low"] < out["estimate"] < out["ci_high"]
    assert out["significant"] is True  # a 0.8-point shift with 5 readers x 30 cases
    if key == "or_mrmc":
        assert out["estimate"] == item["reviewer"]["mrmc"]["comparisons"][0]["estimate"]
    if key == "vgc":
        assert out["p_value"] is None and out["estimate"] == item["reviewer"]["vgc"][0]["auc"]


def test_clmm_outcome_without_a_fit_says_why(item: dict) -> None:
    plan = analysis_plan({"primary_analysis": "clmm"})
    missing = primary_outcome(plan, item, {"status": "unavailable", "message": "no R here"})
    assert missing["estimate"] is None and missing["note"] == "no R here"
    fit = {
        "primary": {
            "arm_effects": [{"odds_ratio": 2.0, "ci_low": 1.5, "ci_high": 2.7, "p_value": 0.001}]
        }
    }
    got = primary_outcome(plan, item, fit)
    assert (got["estimate"], got["significant"], got["measure"]) == (2.0, True, "odds ratio")


def test_power_stand_in_and_figures(item: dict) -> None:
    assert power_analysis_for("wilcoxon_case_means") == ("wilcoxon_case_means", None)
    analysis, note = power_analysis_for("clmm")
    assert analysis == "or_mrmc" and "too slow" in note
    assert vgc_plot(item["reviewer"]["vgc"][0]).startswith(b"\x89PNG")
    svg = power_plot(item["reviewer"]["power"], fmt="svg")
    assert b"5 readers" not in svg and b"readers" in svg and b"<svg" in svg
