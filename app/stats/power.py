"""Power of the next study: simulate the primary analysis over a readers x cases grid.

Model (for two arms): each reader r and case c of a simulated study gives a paired score
difference (test arm minus reference arm)

    d_rc = delta + a_r + b_c + e_rc,   a_r ~ N(0, s2_reader), b_c ~ N(0, s2_case),
                                       e_rc ~ N(0, s2_residual),

where delta is the target effect in score points, a_r is how much a reader's own difference
departs from the average one (reader x arm interaction), b_c the same for a case (case x arm
interaction) and e_rc the rest. These three variance components are all the OR-MRMC test of
the mean score difference depends on (readers and cases random; Hillis, Obuchowski & Berbaum
2011 use the same decomposition for analytic power). They are estimated from a pilot or
finished study (`components_from_scores`: two-way ANOVA of the rater x case differences) or
stated.

Each grid cell simulates `n_sim` studies with a seeded generator and runs the analysis on each:
`or_mrmc` is exactly `app.stats.mrmc.or_statistics` for two arms (tests/stats check the fast
closed form below against it), `wilcoxon_case_means` the signed-rank test on per-case means.
Power is the share of simulated studies with p < alpha, reported with its Monte-Carlo SE.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from app.stats.frames import clean, paired_differences

ANALYSES: dict[str, str] = {
    "or_mrmc": "OR-MRMC test of the mean score difference (readers and cases random)",
    "wilcoxon_case_means": "Wilcoxon signed-rank test on per-case mean differences",
}
DEFAULT_READERS: tuple[int, ...] = (3, 4, 6, 8, 10)
DEFAULT_CASES: tuple[int, ...] = (25, 50, 100, 200, 400)
DEFAULT_SIMS = 500
DEFAULT_SEED = 20240601
_CHUNK_ELEMENTS = 2_000_000  # simulated scores held at once (memory bound)


@dataclass(frozen=True)
class Components:
    """Variance components of the paired score difference (score points squared)."""

    reader: float
    case: float
    residual: float
    source: str = "stated"


def components_from_scores(scores: pd.DataFrame, arm_a: str, arm_b: str) -> dict[str, Any]:
    """Method-of-moments components from a study's (rater x case) differences `arm_b - arm_a`.

    Uses the cases every rater scored in both arms (the balanced part); returns the observed
    mean difference too. `note` says why nothing could be estimated.
    """
    out: dict[str, Any] = {
        "components": None,
        "observed_effect": None,
        "n_readers": 0,
        "n_cases": 0,
        "note": None,
    }
    diffs = paired_differences(scores, arm_a, arm_b)
    if diffs.empty:
        out["note"] = f"no (rater, case) pair has both {arm_a} and {arm_b} scored."
        return out
    table = diffs.pivot_table(index="rater", columns="case", values="diff").dropna(axis=1)
    r, c = table.shape
    out["n_readers"], out["n_cases"] = r, c
    if r < 2 or c < 2:
        out["note"] = (
            "variance components need at least two raters who scored the same two or more cases "
            f"in both arms (found {r} raters x {c} cases)."
        )
        return out
    d = table.to_numpy(float)
    grand = d.mean()
    rm, cm = d.mean(axis=1), d.mean(axis=0)
    ms_r = c * np.sum((rm - grand) ** 2) / (r - 1)
    ms_c = r * np.sum((cm - grand) ** 2) / (c - 1)
    ms_e = np.sum((d - rm[:, None] - cm[None, :] + grand) ** 2) / ((r - 1) * (c - 1))
    comps = Components(
        reader=float(max((ms_r - ms_e) / c, 0.0)),
        case=float(max((ms_c - ms_e) / r, 0.0)),
        residual=float(ms_e),
        source=f"estimated from {r} raters x {c} cases ({arm_b} - {arm_a})",
    )
    out["components"] = asdict(comps)
    out["observed_effect"] = float(grand)
    return clean(out)  # type: ignore[no-any-return]


def simulate_differences(
    comps: Components,
    effect: float,
    n_readers: int,
    n_cases: int,
    n_sim: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """(n_sim, readers, cases) simulated paired differences under the model above."""
    a = rng.normal(scale=np.sqrt(comps.reader), size=(n_sim, n_readers, 1))
    b = rng.normal(scale=np.sqrt(comps.case), size=(n_sim, 1, n_cases))
    e = rng.normal(scale=np.sqrt(comps.residual), size=(n_sim, n_readers, n_cases))
    return effect + a + b + e


def or_mrmc_p_values(d: np.ndarray) -> np.ndarray:
    """OR-Hillis p-values of the mean difference for a batch of complete (S, r, c) studies.

    For two arms and complete data the OR statistics reduce to the reader means of d:
    MS(T) = r dbar^2 / 2, MS(T:R) = var_r(dbar_r) / 2, and Cov2 - Cov3 is half the mean
    off-diagonal jackknife covariance of the reader means, which for a mean is the sample
    covariance over cases divided by c.
    """
    _s, r, c = d.shape
    reader_means = d.mean(axis=2)
    grand = reader_means.mean(axis=1)
    ms_t = r * grand**2 / 2.0
    ms_tr = reader_means.var(axis=1, ddof=1) / 2.0
    sum_var = d.sum(axis=1).var(axis=1, ddof=1) / c  # sum over all (j, j') of the covariances
    trace = d.var(axis=2, ddof=1).sum(axis=1) / c
    cov2_minus_cov3 = (sum_var - trace) / (r * (r - 1)) / 2.0
    den = ms_tr + r * np.maximum(cov2_minus_cov3, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = ms_t / den
        ddf = np.where(ms_tr > 0, den**2 / (ms_tr**2 / (r - 1)), np.inf)
    return np.asarray(stats.f.sf(f, 1, ddf))


def wilcoxon_case_means_p_values(d: np.ndarray) -> np.ndarray:
    """Signed-rank p-values (normal approximation) on per-case mean differences."""
    means = d.mean(axis=1)
    return np.asarray(stats.wilcoxon(means, axis=1, zero_method="pratt", method="approx").pvalue)


_P_VALUES = {"or_mrmc": or_mrmc_p_values, "wilcoxon_case_means": wilcoxon_case_means_p_values}


def rejection_rate(
    comps: Components,
    effect: float,
    n_readers: int,
    n_cases: int,
    *,
    alpha: float,
    n_sim: int,
    rng: np.random.Generator,
    analysis: str = "or_mrmc",
) -> float:
    """Share of `n_sim` simulated studies whose `analysis` rejects at `alpha`."""
    p_values = _P_VALUES[analysis]
    chunk = max(1, _CHUNK_ELEMENTS // (n_readers * n_cases))
    rejected = 0
    done = 0
    while done < n_sim:
        size = min(chunk, n_sim - done)
        d = simulate_differences(comps, effect, n_readers, n_cases, size, rng)
        rejected += int(np.sum(p_values(d) < alpha))
        done += size
    return rejected / n_sim


def power_grid(
    comps: Components,
    effect: float,
    *,
    readers: Sequence[int] = DEFAULT_READERS,
    cases: Sequence[int] = DEFAULT_CASES,
    alpha: float = 0.05,
    n_sim: int = DEFAULT_SIMS,
    seed: int = DEFAULT_SEED,
    analysis: str = "or_mrmc",
) -> dict[str, Any]:
    """Simulated power for every (readers, cases) cell; seeded, so the same call gives the same
    table. Bad input (unknown analysis, < 2 readers or cases, negative variances) -> `note`."""
    out: dict[str, Any] = {
        "analysis": analysis,
        "analysis_label": ANALYSES.get(analysis),
        "effect": effect,
        "alpha": alpha,
        "n_sim": n_sim,
        "seed": seed,
        "components": asdict(comps),
        "readers": [int(r) for r in readers],
        "cases": [int(c) for c in cases],
        "grid": [],
        "note": None,
    }
    if analysis not in _P_VALUES:
        out["note"] = f"unknown analysis {analysis!r}; choose one of {', '.join(ANALYSES)}."
        return out
    if (
        min(comps.reader, comps.case, comps.residual) < 0
        or not np.isfinite([comps.reader, comps.case, comps.residual, effect]).all()
    ):
        out["note"] = "variance components must be finite and >= 0 and the effect finite."
        return out
    if comps.reader + comps.case + comps.residual == 0:
        out["note"] = "all variance components are zero: the pilot shows no variation to model."
        return out
    if not readers or not cases or min(readers) < 2 or min(cases) < 2 or n_sim < 1:
        out["note"] = "the grid needs at least two readers and two cases per cell and n_sim >= 1."
        return out
    rng = np.random.default_rng(seed)
    for r in out["readers"]:
        for c in out["cases"]:
            power = rejection_rate(
                comps, effect, r, c, alpha=alpha, n_sim=n_sim, rng=rng, analysis=analysis
            )
            out["grid"].append(
                {
                    "readers": r,
                    "cases": c,
                    "power": power,
                    "mc_se": float(np.sqrt(power * (1 - power) / n_sim)),
                }
            )
    return clean(out)  # type: ignore[no-any-return]


def power_from_study(
    scores: pd.DataFrame,
    arm_a: str,
    arm_b: str,
    *,
    effect: float | None = None,
    **grid: Any,
) -> dict[str, Any]:
    """Power for the next study from a pilot's components; the effect defaults to the pilot's
    observed mean difference (say so when quoting it: a pilot's effect is a noisy guess)."""
    est = components_from_scores(scores, arm_a, arm_b)
    if est["components"] is None:
        return {"grid": [], "note": est["note"], "pilot": est, "analysis": grid.get("analysis")}
    target = est["observed_effect"] if effect is None else effect
    comps = Components(**est["components"])
    result = power_grid(comps, float(target), **grid)
    result["pilot"] = est
    result["effect_source"] = "observed in this study" if effect is None else "stated"
    result["comparison"] = f"{arm_b} - {arm_a}"
    return result
