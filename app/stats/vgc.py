"""Visual grading characteristics (VGC) analysis (Båth & Månsson 2007).

VGC treats the scores of two conditions the way ROC analysis treats the ratings of diseased and
healthy cases: for every threshold s of the Likert scale, the share of the *test* arm's maps
scored >= s (y) is plotted against the share of the *reference* arm's maps scored >= s (x).
The area under that curve, AUC_VGC, is the probability that a random test-arm map is scored
higher than a random reference-arm map (ties count one half): 0.5 means no difference, > 0.5
means the test arm's maps were rated higher. It uses the scores only as ordered categories,
which is what Likert data are.

Per rater the curve and AUC come from that rater's scores; the pooled AUC_VGC is the mean of
the raters' AUCs (the reader-averaged figure of merit of MRMC analysis) and the pooled curve the
threshold-wise mean of the raters' operating points. Intervals: per rater, a bootstrap over
cases; pooled, a two-way bootstrap over readers and cases (`app.stats.bootstrap`), so the
interval speaks for new readers and new cases (Hansson, Båth & Månsson 2016, VGC Analyzer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from app.stats.bootstrap import RESAMPLED, percentile_ci, two_way_weights
from app.stats.frames import clean, primary
from app.stats.paired import DEFAULT_BOOT, DEFAULT_SEED


def auc_from_histograms(ref: np.ndarray, test: np.ndarray) -> np.ndarray:
    """AUC_VGC from score counts per level (last axis, ascending levels): P(T > R) + P(T = R)/2."""
    below = np.cumsum(ref, axis=-1) - ref
    num = np.sum(test * (below + 0.5 * ref), axis=-1)
    den = ref.sum(axis=-1) * test.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def vgc_curve(ref: np.ndarray, test: np.ndarray) -> list[dict[str, float]]:
    """Operating points from the strictest threshold (highest level) to the laxest, from (0, 0)."""
    ref, test = np.asarray(ref, float), np.asarray(test, float)
    x = np.concatenate([[0.0], np.cumsum(ref[::-1]) / ref.sum()])
    y = np.concatenate([[0.0], np.cumsum(test[::-1]) / test.sum()])
    return [{"x": float(a), "y": float(b)} for a, b in zip(x, y, strict=True)]


def _onehot(table: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """(R, C, K) indicator of each (rater, case) score's level; all zero where missing."""
    return (table[:, :, None] == levels[None, None, :]).astype(float)


def vgc_analysis(
    scores: pd.DataFrame,
    arm_ref: str,
    arm_test: str,
    levels: Sequence[int],
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> dict[str, Any]:
    """VGC curve and AUC_VGC of `arm_test` against `arm_ref`, per rater and pooled, with CIs."""
    levels_arr = np.asarray(list(levels), dtype=float)
    rows = primary(scores)
    rows = rows[rows["arm"].isin([arm_ref, arm_test])]
    out: dict[str, Any] = {
        "arm_ref": arm_ref,
        "arm_test": arm_test,
        "comparison": f"{arm_test} vs {arm_ref}",
        "levels": [int(v) for v in levels_arr],
        "auc": None,
        "ci_low": None,
        "ci_high": None,
        "curve": [],
        "per_rater": [],
        "n_raters": 0,
        "n_cases": 0,
        "n_boot": n_boot,
        "seed": seed,
        "level": level,
        "resampled": RESAMPLED,
        "note": None,
    }
    missing = [a for a in (arm_ref, arm_test) if not (rows["arm"] == a).any()]
    if missing:
        out["note"] = f"arm(s) {', '.join(missing)} have no scores: no VGC curve."
        return out
    both = rows.groupby("rater")["arm"].nunique()
    raters = sorted(str(r) for r in both.index[both == 2])
    rows = rows[rows["rater"].astype(str).isin(raters)]
    cases = sorted(rows["case"].astype(str).unique())
    out["n_raters"], out["n_cases"] = len(raters), len(cases)
    if not raters:
        out["note"] = "no rater scored both arms: no VGC curve."
        return out
    hists, tables = [], []
    for arm in (arm_ref, arm_test):
        table = (
            rows[rows["arm"] == arm]
            .pivot_table(index="rater", columns="case", values="score", aggfunc="first")
            .reindex(index=raters, columns=cases)
            .to_numpy(float)
        )
        tables.append(table)
        hists.append(_onehot(table, levels_arr))
    h_ref, h_test = hists[0].sum(axis=1), hists[1].sum(axis=1)  # (R, K)
    aucs = auc_from_histograms(h_ref, h_test)
    curves = [vgc_curve(h_ref[k], h_test[k]) for k in range(len(raters))]
    out["auc"] = float(np.mean(aucs))
    out["curve"] = [
        {
            "x": float(np.mean([c[i]["x"] for c in curves])),
            "y": float(np.mean([c[i]["y"] for c in curves])),
        }
        for i in range(len(levels_arr) + 1)
    ]
    boot_r: np.ndarray | None = None
    if n_boot > 0 and len(cases) >= 2:
        wr, wc = two_way_weights(len(raters), len(cases), n_boot, seed)
        # Per replicate, per rater: score counts under the case weights (B, R, K).
        b_ref = np.einsum("bc,rck->brk", wc, hists[0], optimize=True)
        b_test = np.einsum("bc,rck->brk", wc, hists[1], optimize=True)
        boot_r = auc_from_histograms(b_ref, b_test)  # case resampling, per rater
        with np.errstate(invalid="ignore", divide="ignore"):
            ok = np.isfinite(boot_r)
            pooled = np.sum(np.where(ok, boot_r, 0.0) * wr, axis=1) / np.sum(ok * wr, axis=1)
        if len(raters) >= 2:
            out["ci_low"], out["ci_high"] = percentile_ci(pooled, level)
        else:
            out["note"] = (
                "one rater: the pooled interval resamples cases only and does not generalise "
                "to other readers."
            )
            out["ci_low"], out["ci_high"] = percentile_ci(boot_r[:, 0], level)
    elif len(cases) < 2:
        out["note"] = "fewer than two cases: no bootstrap interval."
    for k, rater in enumerate(raters):
        lo, hi = percentile_ci(boot_r[:, k], level) if boot_r is not None else (None, None)
        out["per_rater"].append(
            {
                "rater": rater,
                "auc": float(aucs[k]),
                "ci_low": lo,
                "ci_high": hi,
                "n_ref": int(h_ref[k].sum()),
                "n_test": int(h_test[k].sum()),
                "curve": curves[k],
            }
        )
    return clean(out)  # type: ignore[no-any-return]
