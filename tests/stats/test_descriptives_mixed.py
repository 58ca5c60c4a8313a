"""Descriptives against hand values; the crossed LMM against statsmodels on small data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from app.stats import arm_descriptives, fit_crossed_lmm, likert_distribution


def test_descriptives_known_values() -> None:
    scores = pd.DataFrame(
        {
            "arm": ["a"] * 5 + ["b"],
            "score": [1, 2, 3, 4, 5, 4],
            "rater": "r",
            "case": "c",
            "item": "q",
            "is_repeat": False,
        }
    )
    a, b = arm_descriptives(scores, ["a", "b"])
    assert (a["n"], a["mean"], a["median"], a["q1"], a["q3"], a["iqr"]) == (5, 3, 3, 2, 4, 2)
    assert a["sd"] == pytest.approx(np.sqrt(2.5))
    assert b["sd"] is None  # one value: SD undefined, not 0
    dist = likert_distribution(scores, [1, 2, 3, 4, 5], ["b"])[0]
    assert dist["counts"] == {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0}


def _simulated(n_raters: int, n_cases: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rater_eff = rng.normal(0, 0.5, n_raters)
    case_eff = rng.normal(0, 0.8, n_cases)
    rows = []
    for r in range(n_raters):
        for c in range(n_cases):
            for arm, shift in (("std", 0.0), ("adv", 0.6)):
                y = 3 + shift + rater_eff[r] + case_eff[c] + rng.normal(0, 0.7)
                rows.append(
                    {
                        "rater": f"r{r}",
                        "case": f"c{c}",
                        "arm": arm,
                        "item": "q",
                        "score": int(np.clip(np.round(y), 1, 5)),
                        "is_repeat": False,
                    }
                )
    return pd.DataFrame(rows)


def test_crossed_lmm_matches_statsmodels() -> None:
    data = _simulated(4, 12, seed=5).iloc[:-3]  # unbalanced on purpose
    ours = fit_crossed_lmm(data, ["std", "adv"])
    frame = data.assign(g=1, is_adv=(data["arm"] == "adv").astype(float))
    model = sm.MixedLM.from_formula(
        "score ~ is_adv",
        groups="g",
        data=frame,
        vc_formula={"rater": "0 + C(rater)", "case": "0 + C(case)"},
    )
    ref = model.fit(reml=True)
    est = {f["term"]: f for f in ours["fixed"]}
    assert est["arm[adv]"]["estimate"] == pytest.approx(ref.params["is_adv"], abs=1e-4)
    assert est["arm[adv]"]["se"] == pytest.approx(ref.bse["is_adv"], rel=1e-3)
    assert est["(Intercept)"]["estimate"] == pytest.approx(ref.params["Intercept"], abs=1e-4)
    assert ours["variance"]["residual"] == pytest.approx(ref.scale, rel=1e-3)
    vc = dict(zip(model.exog_vc.names, ref.vcomp, strict=True))
    assert ours["variance"]["case"] == pytest.approx(vc["case"], rel=1e-2)
    assert ours["variance"]["rater"] == pytest.approx(vc["rater"], rel=1e-2)
    assert ours["converged"]


def test_crossed_lmm_recovers_effect_and_handles_too_little_data() -> None:
    res = fit_crossed_lmm(_simulated(6, 80, seed=1), ["std", "adv"])
    adv = res["fixed"][1]
    assert adv["ci_low"] < 0.6 < adv["ci_high"]
    assert adv["p_value"] < 1e-6
    tiny = fit_crossed_lmm(_simulated(1, 3, seed=1), ["std", "adv"])
    assert tiny["fixed"] == [] and "two raters" in tiny["note"]
