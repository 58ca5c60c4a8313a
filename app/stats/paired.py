"""Paired comparisons of two arms: Wilcoxon signed-rank (Pratt) and rank-biserial effect size.

Every rater scores both maps of a case in the same trial, so the natural unit is the
per-(rater, case) difference. The same test is repeated on per-case means over raters (one
value per case, no rater clustering) and per rater (the breakdown reviewers ask for). With more
than two arms, Friedman's test comes first and pairwise Wilcoxon tests are Holm-corrected.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from app.stats.frames import clean, paired_differences, primary

DEFAULT_BOOT = 2000
DEFAULT_SEED = 20210101


def wilcoxon_pratt(diffs: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Two-sided Wilcoxon signed-rank test with Pratt's treatment of zero differences.

    Pratt keeps zeros in the ranking (then drops their ranks), which is the better-behaved
    choice when many raters give both maps the same score, as Likert data does. scipy picks
    the exact distribution for small samples without ties/zeros, an exact permutation
    distribution for n <= 13 with ties, and the normal approximation otherwise; the method used
    is reported.
    """
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    n_zero = int(np.sum(d == 0))
    result: dict[str, Any] = {
        "n": int(d.size),
        "n_zero": n_zero,
        "n_positive": int(np.sum(d > 0)),
        "n_negative": int(np.sum(d < 0)),
        "statistic": None,
        "p_value": None,
        "method": None,
        "note": None,
    }
    if d.size == 0:
        result["note"] = "no paired observations"
        return result
    if n_zero == d.size:
        result["note"] = "all differences are zero: no evidence of a difference"
        result["p_value"] = 1.0
        return result
    res = stats.wilcoxon(d, zero_method="pratt", alternative="two-sided", method="auto")
    has_ties = np.unique(np.abs(d)).size < d.size
    result["statistic"] = float(res.statistic)
    result["p_value"] = float(res.pvalue)
    result["method"] = _scipy_wilcoxon_method(d.size, bool(n_zero) or has_ties)
    return clean(result)  # type: ignore[no-any-return]


def _scipy_wilcoxon_method(n: int, ties_or_zeros: bool) -> str:
    """Name the null distribution scipy's `method="auto"` used (scipy >= 1.15 rules)."""
    if n > 50:
        return "normal approximation"
    if not ties_or_zeros:
        return "exact"
    if n <= 13:
        return "exact permutation"
    return "normal approximation"


def _rank_biserial_from_counts(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Matched-pairs rank-biserial r for each row of `counts` (replicates x distinct values).

    Ranks |d| with mid-ranks for ties, zeros included (Pratt), then
    r = (R+ - R-) / (R+ + R-). Working on counts of distinct values makes a 2,000-replicate
    bootstrap of 12,000 Likert differences a small matrix product instead of 2,000 sorts.
    """
    absval = np.abs(values)
    mags, inverse = np.unique(absval, return_inverse=True)
    mag_counts = np.zeros((counts.shape[0], mags.size))
    for j in range(values.size):
        mag_counts[:, inverse[j]] += counts[:, j]
    below = np.cumsum(mag_counts, axis=1) - mag_counts
    mid_rank = below + (mag_counts + 1.0) / 2.0
    ranks = mid_rank[:, inverse]
    r_plus = np.sum(np.where(values > 0, counts * ranks, 0.0), axis=1)
    r_minus = np.sum(np.where(values < 0, counts * ranks, 0.0), axis=1)
    total = r_plus + r_minus
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (r_plus - r_minus) / total, np.nan)


def rank_biserial(
    diffs: Sequence[float] | np.ndarray,
    clusters: Sequence[Any] | np.ndarray | None = None,
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> dict[str, Any]:
    """Rank-biserial correlation of paired differences with a percentile bootstrap CI.

    `clusters` (e.g. the case of each difference) makes the bootstrap resample whole clusters,
    so the CI respects that one case's differences across raters are not independent.
    Positive r means the second arm scored higher.
    """
    d = np.asarray(diffs, dtype=float)
    keep = np.isfinite(d)
    d = d[keep]
    out: dict[str, Any] = {
        "r": None,
        "ci_low": None,
        "ci_high": None,
        "n_boot": n_boot,
        "level": level,
        "resampled": "pairs" if clusters is None else "clusters",
    }
    if d.size == 0:
        return out
    values, idx = np.unique(d, return_inverse=True)
    cl = np.arange(d.size) if clusters is None else np.asarray(clusters)[keep]
    cl_codes, cl_idx = np.unique(cl, return_inverse=True)
    per_cluster = np.zeros((cl_codes.size, values.size))
    np.add.at(per_cluster, (cl_idx, idx), 1.0)
    full = per_cluster.sum(axis=0, keepdims=True)
    out["r"] = float(_rank_biserial_from_counts(values, full)[0])
    if n_boot > 0 and cl_codes.size > 1:
        rng = np.random.default_rng(seed)
        k = cl_codes.size
        if clusters is None:
            # Resampling n independent pairs = multinomial counts over the distinct values.
            counts = rng.multinomial(k, full[0] / k, size=n_boot).astype(float)
        else:
            # Whole clusters: resampling weights via one bincount, then one matrix product.
            draws = rng.integers(0, k, size=(n_boot, k)) + (np.arange(n_boot) * k)[:, None]
            weights = np.bincount(draws.ravel(), minlength=n_boot * k).reshape(n_boot, k)
            counts = weights.astype(float) @ per_cluster
        boot = _rank_biserial_from_counts(values, counts)
        boot = boot[np.isfinite(boot)]
        if boot.size:
            alpha = (1.0 - level) / 2.0
            lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
            out["ci_low"], out["ci_high"] = float(lo), float(hi)
    return clean(out)  # type: ignore[no-any-return]


def _mean_ci(
    d: np.ndarray, clusters: np.ndarray | None = None, level: float = 0.95
) -> tuple[float | None, float | None, float | None]:
    """Mean with a t-based CI; cluster-robust (CR1, t with G-1 df) when `clusters` is given.

    Per-(rater, case) differences of one case are correlated, so the pooled interval uses the
    sandwich variance over cases; within one rater the differences are independent.
    """
    if d.size == 0:
        return None, None, None
    mean = float(d.mean())
    if clusters is None:
        if d.size < 2:
            return mean, None, None
        se, df = float(d.std(ddof=1)) / np.sqrt(d.size), d.size - 1
    else:
        codes = np.unique(clusters, return_inverse=True)[1]
        g = int(codes.max()) + 1
        if g < 2:
            return mean, None, None
        resid = np.bincount(codes, weights=d - mean, minlength=g)
        se = float(np.sqrt(np.sum(resid**2) * g / (g - 1)) / d.size)
        df = g - 1
    half = float(stats.t.ppf(0.5 + level / 2.0, df)) * se
    return mean, mean - half, mean + half


def _summary(d: np.ndarray, clusters: np.ndarray | None, n_boot: int, seed: int) -> dict[str, Any]:
    mean, lo, hi = _mean_ci(d, clusters)
    return {
        "n": int(d.size),
        "mean_diff": mean,
        "mean_diff_ci_low": lo,
        "mean_diff_ci_high": hi,
        "median_diff": float(np.median(d)) if d.size else None,
        "wilcoxon": wilcoxon_pratt(d),
        "rank_biserial": rank_biserial(d, clusters, n_boot=n_boot, seed=seed),
    }


def per_rater_differences(
    diffs: pd.DataFrame, *, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED
) -> list[dict[str, Any]]:
    """One row per rater: mean difference with t CI, Wilcoxon and rank-biserial (forest plot)."""
    out = []
    for rater, group in diffs.groupby("rater", sort=True):
        row = {"rater": str(rater), **_summary(group["diff"].to_numpy(float), None, n_boot, seed)}
        out.append(row)
    return clean(out)  # type: ignore[no-any-return]


def paired_comparison(
    scores: pd.DataFrame,
    arm_a: str,
    arm_b: str,
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """Compare `arm_b` against reference `arm_a` (difference = b - a) at three levels.

    - rater_case: every per-(rater, case) difference; CI resamples cases.
    - case_means: the mean difference over raters per case (independent units).
    - per_rater: the same test within each rater.
    """
    diffs = paired_differences(scores, arm_a, arm_b)
    case_means = diffs.groupby("case", sort=True)["diff"].mean()
    d = diffs["diff"].to_numpy(float)
    return clean(  # type: ignore[no-any-return]
        {
            "arm_a": arm_a,
            "arm_b": arm_b,
            "difference": f"{arm_b} - {arm_a}",
            "n_raters": int(diffs["rater"].nunique()),
            "n_cases": int(diffs["case"].nunique()),
            "rater_case": _summary(d, diffs["case"].to_numpy(), n_boot, seed),
            "case_means": _summary(case_means.to_numpy(float), None, n_boot, seed),
            "per_rater": per_rater_differences(diffs, n_boot=n_boot, seed=seed),
        }
    )


def friedman_and_pairwise(
    scores: pd.DataFrame,
    arms: Sequence[str],
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
) -> dict[str, Any]:
    """Friedman's test over (rater, case) blocks, then Holm-corrected pairwise Wilcoxon tests.

    Only blocks in which every arm was scored enter Friedman's test (it needs complete blocks);
    each pairwise test uses every block that has both of its arms.
    """
    rows = primary(scores)
    wide = rows.pivot_table(
        index=["rater", "case"], columns="arm", values="score", aggfunc="mean", observed=True
    )
    present = [a for a in arms if a in wide.columns]
    complete = wide[present].dropna() if present else wide
    friedman: dict[str, Any] = {
        "n_blocks": len(complete),
        "statistic": None,
        "p_value": None,
        "df": len(present) - 1,
        "note": None,
    }
    if len(present) < 3:
        friedman["note"] = "Friedman's test needs at least three arms"
    elif len(complete) < 2:
        friedman["note"] = "too few complete (rater, case) blocks"
    else:
        res = stats.friedmanchisquare(*[complete[a].to_numpy(float) for a in present])
        friedman["statistic"], friedman["p_value"] = float(res.statistic), float(res.pvalue)
    pairs: list[dict[str, Any]] = []
    for a, b in itertools.combinations(list(arms), 2):
        d = paired_differences(scores, a, b)["diff"].to_numpy(float)
        pairs.append(
            {
                "arm_a": a,
                "arm_b": b,
                "n": int(d.size),
                "mean_diff": float(d.mean()) if d.size else None,
                "wilcoxon": wilcoxon_pratt(d),
                "rank_biserial": rank_biserial(d, n_boot=n_boot, seed=seed),
            }
        )
    raw = [p["wilcoxon"]["p_value"] for p in pairs]
    valid = [i for i, p in enumerate(raw) if p is not None]
    if valid:
        adjusted = multipletests([raw[i] for i in valid], method="holm")[1]
        for i, adj in zip(valid, adjusted, strict=True):
            pairs[i]["p_holm"] = float(adj)
    for p in pairs:
        p.setdefault("p_holm", None)
    return clean({"friedman": friedman, "pairwise": pairs})  # type: ignore[no-any-return]
