"""Inter-rater agreement (Krippendorff's alpha, ICC) and intra-rater agreement from repeats.

The unit of agreement is one map: a (case, arm) pair scored by several raters. Alpha handles
raters who skipped units; ICC needs complete rows, so it uses the units every rater scored and
says how many that was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import krippendorff
import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import cohen_kappa_score

from app.stats.frames import clean, primary

Level = Literal["nominal", "ordinal", "interval", "ratio"]


def krippendorff_alpha(
    matrix: np.ndarray | Sequence[Sequence[float]],
    level: Level = "ordinal",
    value_domain: Sequence[float] | None = None,
) -> float | None:
    """Krippendorff's alpha of a raters x units matrix (NaN = missing), via `krippendorff`.

    Returns None when alpha is undefined (fewer than two pairable values, or no variation).
    """
    data = np.asarray(matrix, dtype=float)
    pairable = np.sum(np.sum(np.isfinite(data), axis=0) >= 2)
    values = data[np.isfinite(data)]
    if pairable == 0 or np.unique(values).size < 2:
        return None
    domain = None
    if level == "ordinal":
        # Unused scale levels have zero frequency, so they do not change ordinal distances;
        # passing the scale keeps the domain explicit and sorted numerically.
        known = np.asarray([] if value_domain is None else value_domain, dtype=float)
        domain = np.union1d(known, np.unique(values))
    return float(
        krippendorff.alpha(reliability_data=data, level_of_measurement=level, value_domain=domain)
    )


def icc(table: np.ndarray | Sequence[Sequence[float]], level: float = 0.95) -> dict[str, Any]:
    """Two-way random-effects ICC, absolute agreement: ICC(2,1) and ICC(2,k).

    `table` is targets x judges without missing values. Point estimates follow Shrout & Fleiss
    (1979); the CIs are their F-based intervals with Satterthwaite degrees of freedom (as in
    R's psych::ICC and McGraw & Wong 1996), and ICC(2,k)'s bounds are the Spearman-Brown
    transforms of ICC(2,1)'s.
    """
    x = np.asarray(table, dtype=float)
    n, k = x.shape
    out: dict[str, Any] = {
        "n_targets": int(n),
        "n_judges": int(k),
        "icc2_1": None,
        "icc2_1_ci": [None, None],
        "icc2_k": None,
        "icc2_k_ci": [None, None],
        "f": None,
        "df1": n - 1,
        "df2": (n - 1) * (k - 1),
        "p_value": None,
        "level": level,
    }
    if n < 2 or k < 2:
        return out
    grand = x.mean()
    ss_rows = k * np.sum((x.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((x.mean(axis=0) - grand) ** 2)
    ss_err = np.sum((x - grand) ** 2) - ss_rows - ss_cols
    msr = ss_rows / (n - 1)
    msc = ss_cols / (k - 1)
    mse = ss_err / ((n - 1) * (k - 1))
    if mse <= 0 and msr <= 0:
        return out
    icc1 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    icck = (msr - mse) / (msr + (msc - mse) / n)
    out.update(icc2_1=float(icc1), icc2_k=float(icck))
    if mse > 0:
        f = msr / mse
        out.update(f=float(f), p_value=float(stats.f.sf(f, n - 1, (n - 1) * (k - 1))))
        fj = msc / mse
        vn = (k - 1) * (n - 1) * (k * icc1 * fj + n * (1 + (k - 1) * icc1) - k * icc1) ** 2
        vd = (n - 1) * k**2 * icc1**2 * fj**2 + (n * (1 + (k - 1) * icc1) - k * icc1) ** 2
        v = vn / vd
        q = 1 - (1 - level) / 2
        f_up = stats.f.ppf(q, n - 1, v)
        f_lo = stats.f.ppf(q, v, n - 1)
        denom = k * msc + (k * n - k - n) * mse
        low = n * (msr - f_up * mse) / (f_up * denom + n * msr)
        high = n * (f_lo * msr - mse) / (denom + n * f_lo * msr)
        out["icc2_1_ci"] = [float(low), float(high)]
        out["icc2_k_ci"] = [
            float(low * k / (1 + low * (k - 1))),
            float(high * k / (1 + high * (k - 1))),
        ]
    return clean(out)  # type: ignore[no-any-return]


def _reliability(rows: pd.DataFrame) -> np.ndarray:
    """Raters x units (case, arm) matrix of scores, NaN where a rater did not score a map.

    Built with integer codes rather than a pivot on strings: it is called once per arm and
    once overall on every analysis.
    """
    rater = pd.factorize(rows["rater"])[0]
    case = pd.factorize(rows["case"])[0]
    arm, arms = pd.factorize(rows["arm"])
    unit = pd.factorize(case * max(len(arms), 1) + arm)[0]
    shape = (int(rater.max()) + 1, int(unit.max()) + 1) if len(rows) else (0, 0)
    total = np.zeros(shape)
    count = np.zeros(shape)
    np.add.at(total, (rater, unit), rows["score"].to_numpy(dtype=float))
    np.add.at(count, (rater, unit), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def _agreement_block(rows: pd.DataFrame, levels: Sequence[int]) -> dict[str, Any]:
    data = _reliability(rows)
    complete = data[:, np.all(np.isfinite(data), axis=0)] if data.size else data
    return {
        "n_raters": int(data.shape[0]),
        "n_units": int(data.shape[1]),
        "n_complete_units": int(complete.shape[1]),
        "alpha_ordinal": krippendorff_alpha(data, "ordinal", levels),
        "alpha_interval": krippendorff_alpha(data, "interval"),
        "icc": icc(complete.T),
    }


def inter_rater_agreement(
    scores: pd.DataFrame, arms: Sequence[str], levels: Sequence[int]
) -> dict[str, Any]:
    """Alpha (ordinal, primary; interval for reference) and ICC per arm and over all maps."""
    rows = primary(scores)
    per_arm = {arm: _agreement_block(rows[rows["arm"] == arm], levels) for arm in arms}
    return clean({"per_arm": per_arm, "overall": _agreement_block(rows, levels)})  # type: ignore[no-any-return]


def _kappa(a: np.ndarray, b: np.ndarray, levels: Sequence[int]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "n": int(a.size),
        "kappa_quadratic": None,
        "kappa_linear": None,
        "exact_agreement": None,
    }
    if a.size == 0:
        return out
    out["exact_agreement"] = float(np.mean(a == b))
    if np.unique(np.concatenate([a, b])).size > 1:
        out["kappa_quadratic"] = float(
            cohen_kappa_score(a, b, labels=list(levels), weights="quadratic")
        )
        out["kappa_linear"] = float(cohen_kappa_score(a, b, labels=list(levels), weights="linear"))
    return out


def intra_rater_agreement(
    scores: pd.DataFrame,
    levels: Sequence[int],
    prefs: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """Weighted kappa between each repeat and the rater's first reading of the same map.

    A repeat shows the same pair with sides flipped, so matching on (rater, case, arm, item)
    compares the same map read twice. Preference consistency on repeats (same arm preferred)
    is reported alongside when `prefs` is given.
    """
    keys = ["rater", "case", "arm", "item"]
    first = scores[~scores["is_repeat"]].groupby(keys, observed=True)["score"].first()
    again = scores[scores["is_repeat"]].groupby(keys, observed=True)["score"].first()
    both = pd.concat(
        [first.rename("first"), again.rename("repeat")], axis=1, join="inner"
    ).reset_index()
    out: dict[str, Any] = {
        "n_repeat_pairs": len(both),
        "pooled": _kappa(both["first"].to_numpy(int), both["repeat"].to_numpy(int), levels),
        "per_rater": [
            {"rater": str(r), **_kappa(g["first"].to_numpy(int), g["repeat"].to_numpy(int), levels)}
            for r, g in both.groupby("rater", sort=True)
        ],
        "preference_consistency": None,
    }
    if prefs is not None and len(prefs):
        out["preference_consistency"] = _preference_consistency(prefs)
    return clean(out)  # type: ignore[no-any-return]


def _preference_consistency(prefs: pd.DataFrame) -> dict[str, Any]:
    """Share of repeated trials in which the rater preferred the same arm (or none) again."""
    p = prefs.copy()
    side = p["preference"].to_numpy()
    p["choice"] = np.where(
        side == "left",
        p["left_arm"].astype(str),
        np.where(side == "right", p["right_arm"].astype(str), "none"),
    )
    p["pair"] = [
        "|".join(sorted((str(a), str(b))))
        for a, b in zip(p["left_arm"], p["right_arm"], strict=True)
    ]
    keys = ["rater", "case", "pair"]
    first = p[~p["is_repeat"].astype(bool)].groupby(keys)["choice"].first()
    again = p[p["is_repeat"].astype(bool)].groupby(keys)["choice"].first()
    both = pd.concat([first.rename("a"), again.rename("b")], axis=1, join="inner")
    n = len(both)
    return {"n": n, "same_choice": float(np.mean(both["a"] == both["b"])) if n else None}
