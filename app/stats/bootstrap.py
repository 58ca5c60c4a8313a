"""Two-way (readers x cases) bootstrap: confidence intervals that do not depend on R.

A study's readers are a sample of radiologists and its cases a sample of images, so an interval
meant to hold for new readers *and* new cases must resample both (Beiden, Wagner & Campbell
2000; the "two-way" or "doubly random" bootstrap used for MRMC studies and by VGC Analyzer).
Each replicate draws readers with replacement and, independently, cases with replacement; a
reader drawn twice counts twice, a case drawn twice counts twice for every reader.

The replicates are represented by integer weights (how often each reader/case was drawn), so a
statistic of a (reader x case) table is a weighted sum: 2,000 replicates of a 6 x 2,000 study
are a few matrix products, not 2,000 loops over 24,000 rows. The two-way bootstrap is slightly
conservative (it adds the reader x case interaction twice); that is the safe side for a report.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from app.stats.frames import clean, paired_differences, primary
from app.stats.paired import DEFAULT_BOOT, DEFAULT_SEED, _rank_biserial_from_counts

RESAMPLED = "readers and cases (two-way bootstrap)"


def draw_weights(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, n) multiplicities of n units drawn with replacement, one row per replicate."""
    draws = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def two_way_weights(
    n_readers: int, n_cases: int, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Reader weights (B, R) and case weights (B, C) of `n_boot` two-way replicates (seeded)."""
    rng = np.random.default_rng(seed)
    return draw_weights(n_readers, n_boot, rng), draw_weights(n_cases, n_boot, rng)


def percentile_ci(boot: np.ndarray, level: float = 0.95) -> tuple[float | None, float | None]:
    """Percentile interval of the finite replicates (None when there are none)."""
    boot = np.asarray(boot, dtype=float)
    boot = boot[np.isfinite(boot)]
    if boot.size < 2:
        return None, None
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def weighted_table_mean(table: np.ndarray, wr: np.ndarray, wc: np.ndarray) -> np.ndarray:
    """Mean of a (R, C) table (NaN = missing) under each replicate's reader/case weights."""
    seen = np.isfinite(table)
    values = np.where(seen, table, 0.0)
    num = np.einsum("br,rc,bc->b", wr, values, wc, optimize=True)
    den = np.einsum("br,rc,bc->b", wr, seen.astype(float), wc, optimize=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def rater_case_table(frame: pd.DataFrame, value: str) -> tuple[np.ndarray, list[str], list[str]]:
    """A (rater x case) table of `value` (NaN where missing) with its row and column labels."""
    wide = frame.pivot_table(
        index="rater", columns="case", values=value, aggfunc="mean", observed=True
    )
    return wide.to_numpy(float), [str(r) for r in wide.index], [str(c) for c in wide.columns]


def _interval(estimate: float | None, boot: np.ndarray, level: float) -> dict[str, Any]:
    lo, hi = percentile_ci(boot, level)
    return {"estimate": estimate, "ci_low": lo, "ci_high": hi}


def _rank_biserial_two_way(
    table: np.ndarray, wr: np.ndarray, wc: np.ndarray
) -> tuple[float | None, np.ndarray]:
    """Rank-biserial r of all (rater, case) differences and its two-way replicates."""
    seen = np.isfinite(table)
    if not seen.any():
        return None, np.array([])
    values = np.unique(table[seen])
    onehot = (table[:, :, None] == values[None, None, :]).astype(float)  # (R, C, V)
    full = _rank_biserial_from_counts(values, onehot.sum(axis=(0, 1))[None, :])[0]
    per_reader = np.einsum("bc,rcv->brv", wc, onehot, optimize=True)
    counts = np.einsum("br,brv->bv", wr, per_reader)
    return float(full), _rank_biserial_from_counts(values, counts)


def headline_intervals(
    scores: pd.DataFrame,
    arms: Sequence[str],
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    level: float = 0.95,
) -> dict[str, Any]:
    """Two-way bootstrap CIs of one item's headline numbers.

    Per arm: the mean score. Per comparison with the reference arm (first): the mean paired
    difference and the rank-biserial r. (AUC_VGC has its own two-way interval in `app.stats.vgc`.)
    Too few readers or cases to resample gives `note` and no intervals.
    """
    arms = list(arms)
    rows = primary(scores)
    out: dict[str, Any] = {
        "resampled": RESAMPLED,
        "n_boot": n_boot,
        "seed": seed,
        "level": level,
        "arms": [],
        "comparisons": [],
        "note": None,
    }
    raters = sorted(rows["rater"].astype(str).unique()) if len(rows) else []
    cases = sorted(rows["case"].astype(str).unique()) if len(rows) else []
    if len(raters) < 2 or len(cases) < 2:
        out["note"] = (
            "the two-way bootstrap needs at least two readers and two cases "
            f"(this item has {len(raters)} and {len(cases)})."
        )
        return out
    wr, wc = two_way_weights(len(raters), len(cases), n_boot, seed)
    for arm in arms:
        mine = rows[rows["arm"] == arm]
        table = (
            mine.pivot_table(index="rater", columns="case", values="score", aggfunc="mean")
            .reindex(index=raters, columns=cases)
            .to_numpy(float)
        )
        est = float(np.nanmean(table)) if np.isfinite(table).any() else None
        boot = weighted_table_mean(table, wr, wc) if est is not None else np.array([])
        out["arms"].append({"arm": arm, "mean": _interval(est, boot, level)})
    for other in arms[1:]:
        diffs = paired_differences(scores, arms[0], other)
        table = (
            diffs.pivot_table(index="rater", columns="case", values="diff", aggfunc="mean")
            .reindex(index=raters, columns=cases)
            .to_numpy(float)
        )
        entry: dict[str, Any] = {
            "arm_a": arms[0],
            "arm_b": other,
            "difference": f"{other} - {arms[0]}",
        }
        if not np.isfinite(table).any():
            entry["mean_diff"] = _interval(None, np.array([]), level)
            entry["rank_biserial"] = _interval(None, np.array([]), level)
            entry["note"] = "no (rater, case) pair has both arms scored."
        else:
            mean_boot = weighted_table_mean(table, wr, wc)
            r_full, r_boot = _rank_biserial_two_way(table, wr, wc)
            entry["mean_diff"] = _interval(float(np.nanmean(table)), mean_boot, level)
            entry["rank_biserial"] = _interval(r_full, r_boot, level)
            entry["note"] = None
        out["comparisons"].append(entry)
    return clean(out)  # type: ignore[no-any-return]
