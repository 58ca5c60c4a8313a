"""Catch-trial performance per rater: was the rater reading the maps?

Two kinds of catch trial, indistinguishable from real ones to the rater:

* **same**: one map on both sides. A rater who reads the maps gives equal scores and no
  preference; a rater who answers by habit ("A is usually better") does not.
* **randomised**: a real map against the map of the same architecture with randomised weights
  (the model-randomisation sanity check of Adebayo et al., 2018). The real map should win:
  scored higher and preferred.

Input: one row per answered catch trial with columns rater, kind ('same'|'randomised'),
real_side ('left'|'right'; ignored for 'same'), score_left, score_right (the first Likert
item) and preference ('left'|'right'|'none'). A rater is flagged when a rate they have data
for falls below `threshold` (default one half: worse than a coin).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from app.stats.frames import clean

CATCH_KINDS: tuple[str, ...] = ("same", "randomised")
DEFAULT_THRESHOLD = 0.5


def _rate(k: int, n: int) -> dict[str, Any]:
    """k of n with a Clopper-Pearson 95% interval."""
    if n == 0:
        return {"k": 0, "n": 0, "rate": None, "ci_low": None, "ci_high": None}
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return {"k": k, "n": n, "rate": k / n, "ci_low": float(ci.low), "ci_high": float(ci.high)}


def _one(rows: pd.DataFrame, threshold: float) -> dict[str, Any]:
    same = rows[rows["kind"] == "same"]
    rand = rows[rows["kind"] == "randomised"]
    same_diff = (same["score_left"].astype(float) - same["score_right"].astype(float)).abs()
    real_left = rand["real_side"] == "left"
    real_score = np.where(real_left, rand["score_left"], rand["score_right"]).astype(float)
    fake_score = np.where(real_left, rand["score_right"], rand["score_left"]).astype(float)
    out: dict[str, Any] = {
        "n_same": len(same),
        "same_equal_scores": _rate(int((same_diff == 0).sum()), len(same)),
        "same_no_preference": _rate(int((same["preference"] == "none").sum()), len(same)),
        "same_mean_abs_diff": float(same_diff.mean()) if len(same) else None,
        "n_randomised": len(rand),
        "real_scored_higher": _rate(int((real_score > fake_score).sum()), len(rand)),
        "real_preferred": _rate(int((rand["preference"] == rand["real_side"]).sum()), len(rand)),
    }
    rates = [
        out[key]["rate"]
        for key in ("same_equal_scores", "real_scored_higher")
        if out[key]["rate"] is not None
    ]
    out["flagged"] = None if not rates else bool(min(rates) < threshold)
    return out


def catch_performance(
    catch: pd.DataFrame, *, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, Any]:
    """Per-rater and pooled catch-trial rates, and which raters fall below `threshold`."""
    needed = ("rater", "kind", "real_side", "score_left", "score_right", "preference")
    missing = [c for c in needed if c not in catch.columns]
    if missing:
        raise ValueError(f"catch frame lacks columns: {', '.join(missing)}")
    rows = catch[catch["kind"].isin(CATCH_KINDS)].copy()
    rows["rater"] = rows["rater"].astype(str)
    rows = rows[rows["score_left"].notna() & rows["score_right"].notna()]
    per_rater = [
        {"rater": str(rater), **_one(group, threshold)}
        for rater, group in rows.groupby("rater", sort=True)
    ]
    return clean(  # type: ignore[no-any-return]
        {
            "threshold": threshold,
            "n_trials": len(rows),
            "overall": _one(rows, threshold) if len(rows) else None,
            "per_rater": per_rater,
            "flagged_raters": [r["rater"] for r in per_rater if r["flagged"]],
        }
    )
