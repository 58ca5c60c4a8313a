"""Multi-reader multi-case (MRMC) analysis: Obuchowski-Rockette with Hillis's df.

Readers and cases are both random, so a conclusion generalises to new radiologists reading new
cases, which a test on the rater x case differences (readers fixed) does not. The method:

* a figure of merit (FOM) per arm x reader: radsal's is the reader's **mean score** of an arm's
  maps (so the arm difference is the mean score difference); for diagnostic studies it is the
  empirical (trapezoidal) ROC AUC, which the tests use to reproduce published results;
* the FOMs' error covariance from the **jackknife over cases** (leave one case out, every
  reader and arm at once), averaged into the Obuchowski-Rockette (1995) error variance and
  covariances Cov1 (same reader, different arms), Cov2 (different readers, same arm) and Cov3
  (different readers, different arms);
* the test statistic F = MS(T) / [MS(T:R) + r max(Cov2 - Cov3, 0)] with Hillis's (2007)
  denominator degrees of freedom ddf = [MS(T:R) + r max(Cov2 - Cov3, 0)]^2 /
  {MS(T:R)^2 / [(t - 1)(r - 1)]}, and a t interval for each difference of reader-averaged FOMs
  with the same df (Hillis 2008; Hillis, Berbaum & Metz 2008).

The core works on arrays with optional leading batch axes, so the power simulation
(`app.stats.power`) runs exactly this analysis on thousands of simulated studies at once.
The Van Dyke et al. (1993) data, as analysed by MRMCaov, are the published check
(tests/stats/test_mrmc.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from app.stats.frames import clean, primary

MIN_READERS = 2
MIN_CASES = 3


def jackknife_covariance(jack: np.ndarray) -> np.ndarray:
    """Jackknife covariance of FOMs from leave-one-case-out values.

    `jack` has shape (..., c, k): c leave-one-out replicates of k FOMs; the result (..., k, k)
    is (c - 1)/c * sum (theta_(i) - mean)(theta_(i) - mean)^T, Efron's jackknife covariance
    as MRMCaov and RJafroc compute it.
    """
    c = jack.shape[-2]
    dev = jack - jack.mean(axis=-2, keepdims=True)
    return np.einsum("...ik,...il->...kl", dev, dev) * (c - 1) / c


def or_covariances(cov: np.ndarray, t: int, r: int) -> dict[str, np.ndarray]:
    """Average a (t*r) x (t*r) FOM covariance (arm-major) into Var, Cov1, Cov2, Cov3."""
    c4 = cov.reshape((*cov.shape[:-2], t, r, t, r))
    same_arm = np.eye(t, dtype=bool)[:, None, :, None]
    same_reader = np.eye(r, dtype=bool)[None, :, None, :]
    masks = {
        "var": same_arm & same_reader,
        "cov1": ~same_arm & same_reader,
        "cov2": same_arm & ~same_reader,
        "cov3": ~same_arm & ~same_reader,
    }
    out = {}
    for name, mask in masks.items():
        n = int(mask.sum())
        out[name] = (
            np.where(mask, c4, 0.0).sum(axis=(-4, -3, -2, -1)) / n
            if n
            else np.zeros(cov.shape[:-2])
        )
    return out


def or_statistics(fom: np.ndarray, jack: np.ndarray, level: float = 0.95) -> dict[str, Any]:
    """The Obuchowski-Rockette analysis as arrays (batch axes allowed in front).

    `fom`: (..., t, r) FOM per arm and reader on all cases; `jack`: (..., c, t, r) the same
    with each case left out in turn. Returns arrays: reader-averaged FOMs, mean squares,
    covariances, variance components, F, df, p and the half-width of each pairwise CI.
    """
    t, r = fom.shape[-2], fom.shape[-1]
    c = jack.shape[-3]
    cov = jackknife_covariance(jack.reshape((*jack.shape[:-2], t * r)))
    covs = or_covariances(cov, t, r)
    arm_means = fom.mean(axis=-1)  # (..., t)
    reader_means = fom.mean(axis=-2)  # (..., r)
    grand = fom.mean(axis=(-2, -1))
    ms_t = r * ((arm_means - grand[..., None]) ** 2).sum(axis=-1) / (t - 1)
    ms_r = t * ((reader_means - grand[..., None]) ** 2).sum(axis=-1) / (r - 1)
    inter = fom - arm_means[..., :, None] - reader_means[..., None, :] + grand[..., None, None]
    ms_tr = (inter**2).sum(axis=(-2, -1)) / ((t - 1) * (r - 1))
    den = ms_tr + r * np.maximum(covs["cov2"] - covs["cov3"], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = ms_t / den
        ddf = den**2 / (ms_tr**2 / ((t - 1) * (r - 1)))
    ddf = np.where(ms_tr > 0, ddf, np.inf)  # no reader-by-arm spread: the normal limit
    p = stats.f.sf(f, t - 1, ddf)
    se_diff = np.sqrt(2.0 * den / r)
    half = stats.t.ppf(0.5 + level / 2.0, ddf) * se_diff
    return {
        "t": t,
        "r": r,
        "c": c,
        "arm_means": arm_means,
        "ms_t": ms_t,
        "ms_r": ms_r,
        "ms_tr": ms_tr,
        **covs,
        "var_reader": (ms_r - ms_tr) / t - covs["cov1"] + covs["cov3"],
        "var_arm_reader": ms_tr - covs["var"] + covs["cov1"] + covs["cov2"] - covs["cov3"],
        "den": den,
        "f": f,
        "ddf": ddf,
        "p": p,
        "se_diff": se_diff,
        "half_width": half,
    }


def _single_arm(fom_i: np.ndarray, cov: np.ndarray, r: int, level: float) -> dict[str, Any]:
    """CI of one arm's reader-averaged FOM (Hillis 2007, data of that arm only)."""
    ms_r = float(np.var(fom_i, ddof=1))
    off = ~np.eye(r, dtype=bool)
    cov2 = float(cov[off].mean())
    den = ms_r + r * max(cov2, 0.0)
    se = float(np.sqrt(den / r))
    df = den**2 / (ms_r**2 / (r - 1)) if ms_r > 0 else np.inf
    half = float(stats.t.ppf(0.5 + level / 2.0, df)) * se
    est = float(fom_i.mean())
    return {
        "estimate": est,
        "ms_r": ms_r,
        "cov2": cov2,
        "se": se,
        "df": float(df),
        "ci_low": est - half,
        "ci_high": est + half,
    }


def obuchowski_rockette(
    fom: np.ndarray,
    jack: np.ndarray,
    arms: Sequence[str],
    readers: Sequence[str],
    *,
    level: float = 0.95,
    fom_name: str = "FOM",
) -> dict[str, Any]:
    """OR-Hillis analysis of one study, readers and cases random, as a JSON-ready dict.

    Differences are reported for every pair of arms as (second - first) in the order of
    `arms`, so the reference arm (first) comes first in each comparison with it.
    """
    arms, readers = list(arms), list(readers)
    t, r = len(arms), len(readers)
    res = or_statistics(fom, jack, level)
    cov = jackknife_covariance(jack.reshape(jack.shape[0], t * r)).reshape(t, r, t, r)
    comparisons = []
    for i, j in itertools.combinations(range(t), 2):
        est = float(res["arm_means"][j] - res["arm_means"][i])
        se = float(res["se_diff"])
        ddf = float(res["ddf"])
        tstat = est / se if se > 0 else np.nan
        comparisons.append(
            {
                "arm_a": arms[i],
                "arm_b": arms[j],
                "difference": f"{arms[j]} - {arms[i]}",
                "estimate": est,
                "se": se,
                "df": ddf,
                "t": tstat,
                "p_value": float(2 * stats.t.sf(abs(tstat), ddf)) if se > 0 else None,
                "ci_low": est - float(res["half_width"]),
                "ci_high": est + float(res["half_width"]),
            }
        )
    scalar = {
        k: float(res[k])
        for k in (
            "ms_t",
            "ms_r",
            "ms_tr",
            "var",
            "cov1",
            "cov2",
            "cov3",
            "var_reader",
            "var_arm_reader",
            "den",
        )
    }
    return clean(  # type: ignore[no-any-return]
        {
            "method": "Obuchowski-Rockette, jackknife covariances, Hillis denominator df",
            "fom": fom_name,
            "readers_random": True,
            "cases_random": True,
            "n_readers": r,
            "n_cases": int(jack.shape[0]),
            "level": level,
            "foms": [
                {"arm": arms[i], "reader": readers[k], "fom": float(fom[i, k])}
                for i in range(t)
                for k in range(r)
            ],
            "arm_foms": [
                {"arm": arms[i], **_single_arm(fom[i], cov[i, :, i, :], r, level)} for i in range(t)
            ],
            "global_test": {
                "f": float(res["f"]),
                "df1": t - 1,
                "df2": float(res["ddf"]),
                "p_value": float(res["p"]),
            },
            "variance_components": scalar,
            "comparisons": comparisons,
            "note": None,
        }
    )


# -- figures of merit --------------------------------------------------------------------


def mean_score_foms(cube: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean-score FOMs and their leave-one-case-out values from a (..., t, r, c) score cube.

    NaN marks a score that does not exist; a reader's FOM is the mean of the scores they gave,
    and leaving out a case that reader did not score leaves their FOM unchanged.
    """
    seen = np.isfinite(cube)
    y = np.where(seen, cube, 0.0)
    total = y.sum(axis=-1)
    n = seen.sum(axis=-1)
    fom = total / n
    with np.errstate(divide="ignore", invalid="ignore"):
        loo = (total[..., None] - y) / (n[..., None] - 1)
    jack = np.where(seen, loo, fom[..., None])  # (..., t, r, c)
    return fom, np.moveaxis(jack, -1, -3)  # (..., c, t, r)


def empirical_auc(truth: np.ndarray, rating: np.ndarray) -> float:
    """Trapezoidal (Mann-Whitney) ROC AUC: P(positive rated higher) + P(tie)/2."""
    pos, neg = rating[truth == 1], rating[truth == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    return float(psi.mean())


def auc_foms(cube: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Empirical AUC FOMs and leave-one-case-out values from a (t, r, c) rating cube."""
    truth = np.asarray(truth)
    pos, neg = np.flatnonzero(truth == 1), np.flatnonzero(truth == 0)
    t, r, c = cube.shape
    fom = np.empty((t, r))
    jack = np.empty((c, t, r))
    for i in range(t):
        for k in range(r):
            x, y = cube[i, k, pos], cube[i, k, neg]
            psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
            total, n1, n0 = psi.sum(), len(pos), len(neg)
            fom[i, k] = total / (n1 * n0)
            jack[pos, i, k] = (total - psi.sum(axis=1)) / ((n1 - 1) * n0)
            jack[neg, i, k] = (total - psi.sum(axis=0)) / (n1 * (n0 - 1))
    return fom, jack


def score_cube(
    scores: pd.DataFrame, arms: Sequence[str]
) -> tuple[np.ndarray, list[str], list[str], list[str]]:
    """First-reading scores of one item as a (arm, rater, case) cube (NaN where missing).

    Returns the cube, the raters kept, the cases kept, and notes about dropped raters: a rater
    without scores in every arm has no FOM difference and cannot enter the analysis.
    """
    rows = primary(scores)
    rows = rows[rows["arm"].isin(list(arms))]
    notes: list[str] = []
    # A reader's FOM in an arm needs two or more cases for its leave-one-out values.
    counts = rows.groupby(["rater", "arm"])["case"].nunique().unstack(fill_value=0)
    counts = counts.reindex(columns=list(arms), fill_value=0)
    ok = (counts >= 2).all(axis=1)
    complete = sorted(str(x) for x in counts.index[ok])
    dropped = sorted(str(x) for x in counts.index[~ok])
    if dropped:
        notes.append(
            f"rater(s) {', '.join(dropped)} scored fewer than two cases in some arm and are left "
            "out of the MRMC analysis."
        )
    rows = rows[rows["rater"].isin(complete)]
    cases = sorted(rows["case"].astype(str).unique())
    table = rows.pivot_table(
        index=["arm", "rater"], columns="case", values="score", aggfunc="mean", observed=True
    )
    index = pd.MultiIndex.from_product([list(arms), complete], names=["arm", "rater"])
    table = table.reindex(index=index, columns=cases)
    cube = table.to_numpy(float).reshape(len(arms), len(complete), len(cases))
    return cube, complete, cases, notes


def mrmc_mean_difference(
    scores: pd.DataFrame, arms: Sequence[str], *, level: float = 0.95
) -> dict[str, Any]:
    """OR-MRMC analysis of the mean score difference of one Likert item (readers, cases random).

    Every arm is compared with the first (reference) arm and with each other; bad input (one
    arm, fewer than two readers or three cases, no spread at all) gives `note` and no numbers.
    """
    arms = list(arms)
    out: dict[str, Any] = {
        "method": "Obuchowski-Rockette, jackknife covariances, Hillis denominator df",
        "fom": "mean score",
        "readers_random": True,
        "cases_random": True,
        "n_readers": 0,
        "n_cases": 0,
        "level": level,
        "comparisons": [],
        "global_test": None,
        "variance_components": None,
        "foms": [],
        "arm_foms": [],
        "notes": [],
        "note": None,
    }
    present = [a for a in arms if len(scores) and (primary(scores)["arm"] == a).any()]
    missing = [a for a in arms if a not in present]
    if len(arms) < 2:
        out["note"] = "MRMC needs at least two arms."
        return out
    if missing:
        out["note"] = (
            f"arm(s) {', '.join(missing)} have no ratings: no MRMC comparison is possible."
        )
        return out
    cube, readers, cases, notes = score_cube(scores, arms)
    out["notes"] = notes
    out["n_readers"], out["n_cases"] = len(readers), len(cases)
    if len(readers) < MIN_READERS:
        out["note"] = (
            f"MRMC with random readers needs at least {MIN_READERS} readers who scored every "
            f"arm; this item has {len(readers)}."
        )
        return out
    if len(cases) < MIN_CASES:
        out["note"] = f"MRMC needs at least {MIN_CASES} cases; this item has {len(cases)}."
        return out
    fom, jack = mean_score_foms(cube)
    result = obuchowski_rockette(fom, jack, arms, readers, level=level, fom_name="mean score")
    if not result["variance_components"]["den"]:
        result["note"] = (
            "the OR-MRMC variance estimate is zero (the readers' mean differences are identical "
            "and their differences are not positively correlated across cases), so there is no "
            "test."
        )
        result["comparisons"] = []
        result["global_test"] = None
    result["notes"] = notes
    return result
