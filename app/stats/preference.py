"""Forced-choice preferences between the two maps, a side-bias check and a blinding check."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from app.stats.frames import clean, primary, validate_preferences


def _binomial(k: int, n: int) -> dict[str, Any]:
    """Exact two-sided binomial test against 1/2 with a Clopper-Pearson 95% CI."""
    if n == 0:
        return {
            "k": 0,
            "n": 0,
            "proportion": None,
            "ci_low": None,
            "ci_high": None,
            "p_value": None,
        }
    res = stats.binomtest(k, n, p=0.5, alternative="two-sided")
    ci = res.proportion_ci(confidence_level=0.95, method="exact")
    return {
        "k": k,
        "n": n,
        "proportion": k / n,
        "ci_low": float(ci.low),
        "ci_high": float(ci.high),
        "p_value": float(res.pvalue),
    }


def _preferred_arm(prefs: pd.DataFrame) -> pd.Series:
    side = prefs["preference"].to_numpy()
    return pd.Series(
        np.where(
            side == "left", prefs["left_arm"], np.where(side == "right", prefs["right_arm"], "")
        ),
        index=prefs.index,
    )


def preference_test(prefs: pd.DataFrame, arm_a: str, arm_b: str) -> dict[str, Any]:
    """Counts of trials preferring each arm and an exact binomial test of `arm_b` vs `arm_a`.

    "No preference" answers are excluded from the test (they carry no direction) but reported,
    as a reviewer will want to know how many there were. The side-bias check asks whether the
    left map won more often than half the time, which would suggest a display or habit effect
    that counterbalancing hides from the arm comparison but should still be reported.
    """
    rows = primary(validate_preferences(prefs))
    pair = rows[
        ((rows["left_arm"] == arm_a) & (rows["right_arm"] == arm_b))
        | ((rows["left_arm"] == arm_b) & (rows["right_arm"] == arm_a))
    ]
    winner = _preferred_arm(pair)
    n_a = int((winner == arm_a).sum())
    n_b = int((winner == arm_b).sum())
    n_none = int((pair["preference"] == "none").sum())
    decided = pair[pair["preference"] != "none"]
    n_left = int((decided["preference"] == "left").sum())
    per_rater = []
    for rater, group in pair.groupby("rater", sort=True):
        w = winner.loc[group.index]
        per_rater.append(
            {
                "rater": str(rater),
                "n": len(group),
                "prefer_a": int((w == arm_a).sum()),
                "prefer_b": int((w == arm_b).sum()),
                "none": int((group["preference"] == "none").sum()),
            }
        )
    return clean(  # type: ignore[no-any-return]
        {
            "arm_a": arm_a,
            "arm_b": arm_b,
            "n_trials": len(pair),
            "counts": {arm_a: n_a, arm_b: n_b, "none": n_none},
            "prefer_b": _binomial(n_b, n_a + n_b),
            "side_bias": {"left_preferred": n_left, **_binomial(n_left, len(decided))},
            "per_rater": per_rater,
        }
    )


def blinding_check(guesses: pd.DataFrame, target_arm: str) -> dict[str, Any]:
    """How often raters correctly guessed which map came from `target_arm`.

    `guesses` has one row per trial: rater, case, left_arm, right_arm, guess
    ('left'|'right'|'none'). If blinding held, correct guesses among committed ones are ~50%;
    a significant excess means the maps' look revealed the model, and the paper must say so.
    """
    rows = guesses.copy()
    for col in ("left_arm", "right_arm"):
        rows[col] = rows[col].astype(str)
    if "is_repeat" in rows.columns:
        rows = primary(rows)
    rows = rows[(rows["left_arm"] == target_arm) | (rows["right_arm"] == target_arm)]
    committed = rows[rows["guess"].isin(["left", "right"])]
    guessed_arm = np.where(
        committed["guess"] == "left", committed["left_arm"], committed["right_arm"]
    )
    correct = int(np.sum(guessed_arm == target_arm))
    return clean(  # type: ignore[no-any-return]
        {
            "target_arm": target_arm,
            "n_trials": len(rows),
            "dont_know": int(len(rows) - len(committed)),
            "correct": _binomial(correct, len(committed)),
        }
    )
