"""Rater quality flags on a study with one careful rater and one of each kind of problem."""

from __future__ import annotations

import numpy as np
import pandas as pd

from app.stats.quality import Thresholds, rater_quality


def _study() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(4)
    rows, prefs = [], []
    trial = 0
    for rater in ("careful", "hasty", "flat", "lefty"):
        for case in range(40):
            first = {"std": int(rng.integers(1, 5)), "dual": int(rng.integers(2, 6))}
            for repeat in (False, True) if case < 10 else (False,):
                trial += 1
                left, right = ("std", "dual") if (case + repeat) % 2 else ("dual", "std")
                base = dict(first)  # a careful rater reads a repeated map the same way
                if rater == "flat":
                    base = {"std": 3, "dual": 3}
                if rater == "lefty" and repeat:
                    base = {k: int(rng.integers(1, 6)) for k in base}  # reads at random again
                ms = 600 if rater == "hasty" else int(rng.integers(6000, 12000))
                for side, arm in (("left", left), ("right", right)):
                    score = base[arm] + (2 if rater == "lefty" and side == "left" else 0)
                    rows.append(
                        {
                            "rater": rater,
                            "case": f"c{case}",
                            "arm": arm,
                            "item": "q",
                            "score": min(score, 5),
                            "side": side,
                            "trial": trial,
                            "is_repeat": repeat,
                            "active_ms": ms,
                        }
                    )
                choice = "left" if rater == "lefty" else ("left" if rng.random() < 0.5 else "right")
                prefs.append(
                    {
                        "rater": rater,
                        "case": f"c{case}",
                        "left_arm": left,
                        "right_arm": right,
                        "preference": choice,
                        "is_repeat": repeat,
                    }
                )
    return pd.DataFrame(rows), pd.DataFrame(prefs)


def test_each_problem_is_flagged_and_the_careful_rater_is_not() -> None:
    scores, prefs = _study()
    res = rater_quality(scores, prefs)
    by = {r["rater"]: r for r in res["raters"]}
    assert by["careful"]["flags"] == []
    assert any(f.startswith("too fast") for f in by["hasty"]["flags"])
    assert by["hasty"]["median_active_s"] == 0.6
    assert any(f.startswith("straight-lining") for f in by["flat"]["flags"])
    assert by["flat"]["score_sd"] == 0.0
    lefty = by["lefty"]
    assert lefty["side_preference"]["left_share"] == 1.0
    assert sum(f.startswith("side bias") for f in lefty["flags"]) == 2  # preference and scores
    assert lefty["side_scores"]["mean_left_minus_right"] > 0
    assert any(f.startswith("inconsistent") for f in lefty["flags"])
    assert lefty["n_repeats"] == 20  # 10 repeated trials x 2 maps
    assert res["flagged"] == ["flat", "hasty", "lefty"]
    assert res["thresholds"]["min_seconds"] == 2.0


def test_thresholds_and_missing_inputs() -> None:
    scores, _ = _study()
    lax = rater_quality(
        scores.drop(columns=["active_ms", "side"]),
        None,
        thresholds=Thresholds(min_kappa=-1.0, min_sd=0.0, max_mode_share=1.1),
    )
    assert lax["flagged"] == []
    assert all(r["median_active_s"] is None for r in lax["raters"])
    assert rater_quality(scores.iloc[:0])["note"] == "no scores yet: nothing to check."
