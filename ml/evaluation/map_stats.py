"""Statistics for map comparisons: case-bootstrap CIs, paired differences, Wilcoxon p.

A map metric averaged over a few dozen cases is a noisy number; comparing two arms by their
means alone (box energy 0.118 vs 0.108 against a chance level of 0.083) invites reading noise
as localisation. Everything here works on a long table of per-case values, one row per
(case, arm), and reports

* per arm and metric: n, mean and a percentile case-bootstrap 95 % CI;
* per pair of arms and metric: the mean paired difference (``b − a``) over the cases both
  have, its case-bootstrap CI, and the Wilcoxon signed-rank p (two-sided, zero differences
  dropped; 1.0 when every difference is zero);
* degenerate maps (constant or all-zero, so "where the map points" is undefined): counted per
  arm and excluded, with a note saying how many.

Arms include the null baselines (shuffled masks, randomised-weights and untrained models): a
real arm is only evidence of localisation when it beats them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import wilcoxon

__all__ = [
    "STAT_METRICS",
    "bootstrap_mean_ci",
    "compare_arms",
    "paired_difference",
]

# Metrics worth a CI, in report order (those absent from the rows are skipped).
STAT_METRICS = (
    "mask_energy",
    "pointing",
    "gini",
    "entropy",
    "tv",
    "deletion_auc",
    "insertion_auc",
)


def _value(v: Any) -> float | None:
    if v is None or isinstance(v, bool) or v == "":
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def bootstrap_mean_ci(
    values: Sequence[float], n_bootstrap: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float | None, float | None, float | None]:
    """(mean, low, high): percentile case-bootstrap CI of the mean; Nones for no values."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return None, None, None
    mean = float(x.mean())
    if x.size == 1 or n_bootstrap <= 0:
        return mean, None, None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_bootstrap, x.size))
    means = x[idx].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return mean, float(lo), float(hi)


def paired_difference(
    a: Sequence[float], b: Sequence[float], n_bootstrap: int = 2000, seed: int = 0
) -> dict[str, Any]:
    """Mean of ``b − a`` over paired cases with its bootstrap CI and Wilcoxon signed-rank p."""
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    mean, lo, hi = bootstrap_mean_ci(d.tolist(), n_bootstrap, seed=seed)
    p: float | None = None
    if d.size >= 2:
        if np.all(d == 0):
            p = 1.0
        else:
            p = float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
    return {"n": int(d.size), "mean_diff": mean, "ci_low": lo, "ci_high": hi, "wilcoxon_p": p}


def compare_arms(
    rows: Iterable[Mapping[str, Any]],
    *,
    arms: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    metrics: Sequence[str] = STAT_METRICS,
    kinds: Mapping[str, str] | None = None,
    n_bootstrap: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Per-arm CIs and paired differences from per-case rows (``case_id``, ``arm``, metrics,
    optional ``degenerate``). ``kinds`` labels arms (``model`` or a null baseline's name)."""
    table: dict[str, dict[str, Mapping[str, Any]]] = {a: {} for a in arms}
    for row in rows:
        arm = str(row.get("arm"))
        if arm in table:
            table[arm][str(row["case_id"])] = row
    present = [
        m
        for m in metrics
        if any(_value(r.get(m)) is not None for t in table.values() for r in t.values())
    ]
    notes: list[str] = []
    per_arm: list[dict[str, Any]] = []
    for k, arm in enumerate(arms):
        cases = table[arm]
        bad = sorted(c for c, r in cases.items() if r.get("degenerate"))
        if bad:
            notes.append(
                f"{arm}: {len(bad)} of {len(cases)} maps are degenerate (constant or all-zero) "
                "and are excluded from its statistics"
            )
        entry: dict[str, Any] = {
            "arm": arm,
            "kind": (kinds or {}).get(arm, "model"),
            "n_cases": len(cases),
            "n_degenerate": len(bad),
            "degenerate_cases": bad,
            "metrics": {},
        }
        for j, metric in enumerate(present):
            vals = [
                v
                for c, r in cases.items()
                if not r.get("degenerate") and (v := _value(r.get(metric))) is not None
            ]
            mean, lo, hi = bootstrap_mean_ci(vals, n_bootstrap, seed=seed + 101 * k + j)
            entry["metrics"][metric] = {"n": len(vals), "mean": mean, "ci_low": lo, "ci_high": hi}
        per_arm.append(entry)
    paired: list[dict[str, Any]] = []
    for k, (a, b) in enumerate(pairs):
        for j, metric in enumerate(present):
            xa: list[float] = []
            xb: list[float] = []
            for case, ra in table.get(a, {}).items():
                rb = table.get(b, {}).get(case)
                if rb is None or ra.get("degenerate") or rb.get("degenerate"):
                    continue
                va, vb = _value(ra.get(metric)), _value(rb.get(metric))
                if va is not None and vb is not None:
                    xa.append(va)
                    xb.append(vb)
            if not xa:
                continue  # a metric one side never has (shuffled masks have no Gini)
            res = paired_difference(xa, xb, n_bootstrap, seed=seed + 7919 + 101 * k + j)
            paired.append({"a": a, "b": b, "metric": metric, **res})
    return {
        "metrics": present,
        "n_bootstrap": n_bootstrap,
        "ci_level": 0.95,
        "arms": per_arm,
        "paired": paired,
        "notes": notes,
    }
