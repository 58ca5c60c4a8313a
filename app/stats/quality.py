"""Rater quality flags: who may not have read the maps the way the study assumes.

Four checks per rater, each with the number behind it so a researcher can judge (a flag is a
prompt to look, not a verdict, and nothing is excluded automatically):

* **too fast**: median active time per trial below `min_seconds` or below a third of the
  median over raters (someone clicking through);
* **straight-lining**: almost no variation in the scores given (SD below `min_sd` or one level
  used for at least `max_mode_share` of the maps);
* **side bias**: the left map is preferred more (or less) often than chance (exact binomial
  test among decided trials), or scored systematically higher than the right map (Wilcoxon
  signed-rank on left - right scores); sides are counterbalanced, so a real difference between
  arms cancels out of both;
* **inconsistent**: low intra-rater agreement between first and repeated readings (quadratic
  kappa below `min_kappa`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from app.stats.agreement import intra_rater_agreement
from app.stats.frames import clean, primary


@dataclass(frozen=True)
class Thresholds:
    """When a flag is raised; stated in the output so a report can quote it."""

    min_seconds: float = 2.0
    relative_speed: float = 1 / 3
    min_sd: float = 0.3
    max_mode_share: float = 0.9
    min_trials: int = 10
    side_alpha: float = 0.01
    min_kappa: float = 0.4
    min_repeats: int = 5


def _speed(scores: pd.DataFrame) -> dict[str, float | None]:
    """Median active seconds per first-reading trial, per rater (None without timings)."""
    if "active_ms" not in scores.columns:
        return {}
    rows = primary(scores)
    key = "trial" if "trial" in rows.columns else "case"
    per_trial = rows.dropna(subset=["active_ms"]).drop_duplicates(subset=["rater", key])
    med = per_trial.groupby("rater")["active_ms"].median() / 1000.0
    return {str(r): float(v) for r, v in med.items()}


def _side_scores(scores: pd.DataFrame, rater: str) -> dict[str, Any] | None:
    """Left minus right score per first-reading trial and item; Wilcoxon against zero."""
    if "side" not in scores.columns or "trial" not in scores.columns:
        return None
    rows = primary(scores)
    rows = rows[rows["rater"] == rater]
    wide = rows.pivot_table(index=["trial", "item"], columns="side", values="score")
    if "left" not in wide.columns or "right" not in wide.columns:
        return None
    d = (wide["left"] - wide["right"]).dropna().to_numpy(float)
    if d.size == 0 or np.all(d == 0):
        return {
            "n": int(d.size),
            "mean_left_minus_right": 0.0 if d.size else None,
            "p_value": 1.0 if d.size else None,
        }
    p = float(stats.wilcoxon(d, zero_method="pratt").pvalue)
    return {"n": int(d.size), "mean_left_minus_right": float(d.mean()), "p_value": p}


def _side_preference(prefs: pd.DataFrame | None, rater: str) -> dict[str, Any] | None:
    if prefs is None or not len(prefs):
        return None
    mine = primary(prefs)
    mine = mine[(mine["rater"] == rater) & mine["preference"].isin(["left", "right"])]
    n = len(mine)
    if n == 0:
        return None
    left = int((mine["preference"] == "left").sum())
    p = float(stats.binomtest(left, n, 0.5).pvalue)
    return {"n_decided": n, "left_share": left / n, "p_value": p}


def rater_quality(
    scores: pd.DataFrame,
    prefs: pd.DataFrame | None = None,
    *,
    levels: Sequence[int] = (1, 2, 3, 4, 5),
    thresholds: Thresholds = Thresholds(),
) -> dict[str, Any]:
    """Quality flags per rater over all Likert items' first readings (and repeats for kappa).

    Returns `raters`: one row per rater with the numbers and a list of `flags` (each a short
    sentence), and `flagged`: the raters with at least one flag.
    """
    th = thresholds
    out: dict[str, Any] = {"thresholds": asdict(th), "raters": [], "flagged": [], "note": None}
    if not len(scores):
        out["note"] = "no scores yet: nothing to check."
        return out
    rows = primary(scores)
    speed = _speed(scores)
    speeds = [v for v in speed.values() if v is not None]
    overall_speed = float(np.median(speeds)) if speeds else None
    has_repeats = "is_repeat" in scores.columns and bool(scores["is_repeat"].astype(bool).any())
    intra = intra_rater_agreement(scores, levels) if has_repeats else None
    kappas = {k["rater"]: k for k in (intra["per_rater"] if intra else [])}
    for rater in sorted(rows["rater"].astype(str).unique()):
        mine = rows[rows["rater"] == rater]["score"].to_numpy(float)
        flags: list[str] = []
        sec = speed.get(rater)
        if sec is not None and len(mine) >= th.min_trials:
            if sec < th.min_seconds:
                flags.append(f"too fast: median {sec:.1f} s per trial (< {th.min_seconds:g} s)")
            elif overall_speed and sec < th.relative_speed * overall_speed:
                flags.append(
                    f"too fast: median {sec:.1f} s per trial, under a third of the raters' "
                    f"median ({overall_speed:.1f} s)"
                )
        sd = float(np.std(mine, ddof=1)) if mine.size > 1 else None
        _, counts = np.unique(mine, return_counts=True)
        mode_share = float(counts.max() / mine.size) if mine.size else None
        enough = mine.size >= th.min_trials and sd is not None and mode_share is not None
        if enough and (sd < th.min_sd or mode_share >= th.max_mode_share):  # type: ignore[operator]
            flags.append(
                f"straight-lining: score SD {sd:.2f}, {mode_share:.0%} of maps got the same score"
            )
        side_pref = _side_preference(prefs, rater)
        if (
            side_pref
            and side_pref["n_decided"] >= th.min_trials
            and (side_pref["p_value"] < th.side_alpha)
        ):
            flags.append(
                f"side bias: preferred the left map in {side_pref['left_share']:.0%} of "
                f"{side_pref['n_decided']} decided trials (p = {side_pref['p_value']:.2g})"
            )
        side_score = _side_scores(scores, rater)
        p_side = side_score["p_value"] if side_score else None
        if side_score and side_score["n"] >= th.min_trials and (p_side or 1.0) < th.side_alpha:
            flags.append(
                "side bias: left map scored "
                f"{side_score['mean_left_minus_right']:+.2f} points vs the right "
                f"(p = {p_side:.2g})"
            )
        kap = kappas.get(rater)
        kq = kap.get("kappa_quadratic") if kap else None
        if kap and kap["n"] >= th.min_repeats and kq is not None and kq < th.min_kappa:
            flags.append(
                f"inconsistent: quadratic kappa {kq:.2f} between first and repeated readings "
                f"({kap['n']} repeats)"
            )
        out["raters"].append(
            {
                "rater": rater,
                "n_scores": int(mine.size),
                "median_active_s": sec,
                "score_sd": sd,
                "mode_share": mode_share,
                "side_preference": side_pref,
                "side_scores": side_score,
                "repeat_kappa_quadratic": kq,
                "n_repeats": kap["n"] if kap else 0,
                "flags": flags,
            }
        )
        if flags:
            out["flagged"].append(rater)
    return clean(out)  # type: ignore[no-any-return]
