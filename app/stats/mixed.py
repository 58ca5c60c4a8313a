"""Linear mixed model score ~ arm + (1|rater) + (1|case), fitted by REML.

This is the in-app approximation of the cumulative-link mixed model (`ordinal::clmm`) that the
exported R script fits. Raters and cases are *crossed* random effects. statsmodels' MixedLM can
express crossed effects only as variance components of a single group, which builds dense
n x n matrices and takes minutes for a 6 x 2,000 x 2 study; here Henderson's mixed-model
equations are solved with the case block (diagonal) eliminated first, so each likelihood
evaluation is O(n). The result matches statsmodels on small data (see tests/stats).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from app.stats.frames import clean, primary

_LOG_BOUNDS = (-18.0, 8.0)


class _Design:
    """Cross-products the REML criterion needs, computed once per fit."""

    def __init__(self, y: np.ndarray, x: np.ndarray, case: np.ndarray, rater: np.ndarray) -> None:
        self.n, self.p = x.shape
        self.n_case = int(case.max()) + 1
        self.n_rater = int(rater.max()) + 1
        zr = np.zeros((self.n, self.n_rater))
        zr[np.arange(self.n), rater] = 1.0
        w = np.hstack([x, zr])  # fixed effects and rater effects share the small block
        self.yy = float(y @ y)
        self.case_counts = np.bincount(case, minlength=self.n_case).astype(float)
        self.case_y = np.bincount(case, weights=y, minlength=self.n_case)
        self.case_w = np.zeros((self.n_case, w.shape[1]))
        np.add.at(self.case_w, case, w)
        self.ww = w.T @ w
        self.wy = w.T @ y

    def solve(self, log_gc: float, log_gr: float) -> tuple[float, float, np.ndarray, np.ndarray]:
        """Return (-2 REML log-likelihood, sigma^2, [beta; rater effects], inverse Schur)."""
        gc, gr = np.exp(log_gc), np.exp(log_gr)
        d = self.case_counts + 1.0 / gc
        a = self.ww.copy()
        idx = np.arange(self.p, a.shape[0])
        a[idx, idx] += 1.0 / gr
        bd = self.case_w / d[:, None]
        schur = a - self.case_w.T @ bd
        rhs = self.wy - bd.T @ self.case_y
        chol = np.linalg.cholesky(schur)
        theta = np.linalg.solve(schur, rhs)
        u = (self.case_y - self.case_w @ theta) / d
        quad = self.yy - theta @ self.wy - u @ self.case_y
        dof = self.n - self.p
        sigma2 = max(quad / dof, 1e-300)
        logdet_c = np.sum(np.log(d)) + 2.0 * np.sum(np.log(np.diag(chol)))
        logdet_g = self.n_case * log_gc + self.n_rater * log_gr
        m2ll = dof * np.log(sigma2) + logdet_g + logdet_c + dof * (1.0 + np.log(2.0 * np.pi))
        return float(m2ll), float(sigma2), theta, np.linalg.inv(schur)


def fit_crossed_lmm(scores: pd.DataFrame, arms: Sequence[str]) -> dict[str, Any]:
    """Fit score ~ arm + (1|rater) + (1|case) on first readings of one item.

    The first arm is the reference level; each other arm gets a coefficient (its mean score
    difference from the reference, adjusted for rater and case) with a Wald z-test and CI.
    """
    rows = primary(scores)
    rows = rows[rows["arm"].isin(list(arms))]
    out: dict[str, Any] = {
        "model": "score ~ arm + (1|rater) + (1|case)",
        "method": "REML",
        "reference_arm": arms[0] if arms else None,
        "n_obs": len(rows),
        "n_raters": int(rows["rater"].nunique()),
        "n_cases": int(rows["case"].nunique()),
        "fixed": [],
        "variance": None,
        "converged": False,
        "note": None,
    }
    present = [a for a in arms if (rows["arm"] == a).any()]
    if len(present) < 2 or out["n_raters"] < 2 or out["n_cases"] < 2:
        out["note"] = "needs at least two arms, two raters and two cases with scores"
        return out
    y = rows["score"].to_numpy(float)
    arm_vals = rows["arm"].to_numpy()
    x = np.column_stack([np.ones(len(rows))] + [(arm_vals == a).astype(float) for a in present[1:]])
    case = pd.factorize(rows["case"])[0]
    rater = pd.factorize(rows["rater"])[0]
    design = _Design(y, x, case, rater)

    def objective(params: np.ndarray) -> float:
        return design.solve(float(params[0]), float(params[1]))[0]

    best: Any = None
    for start in ((0.0, -1.0), (-3.0, -4.0)):  # two starts guard against a boundary optimum
        res = optimize.minimize(
            objective, np.array(start), method="L-BFGS-B", bounds=[_LOG_BOUNDS, _LOG_BOUNDS]
        )
        if best is None or res.fun < best.fun:
            best = res
    m2ll, sigma2, theta, inv_schur = design.solve(float(best.x[0]), float(best.x[1]))
    cov = sigma2 * inv_schur[: design.p, : design.p]
    z_crit = float(stats.norm.ppf(0.975))
    names = ["(Intercept)"] + [f"arm[{a}]" for a in present[1:]]
    for i, name in enumerate(names):
        se = float(np.sqrt(cov[i, i]))
        z = float(theta[i] / se)
        out["fixed"].append(
            {
                "term": name,
                "estimate": float(theta[i]),
                "se": se,
                "z": z,
                "p_value": float(2 * stats.norm.sf(abs(z))),
                "ci_low": float(theta[i] - z_crit * se),
                "ci_high": float(theta[i] + z_crit * se),
            }
        )
    out["variance"] = {
        "case": float(np.exp(best.x[0]) * sigma2),
        "rater": float(np.exp(best.x[1]) * sigma2),
        "residual": sigma2,
    }
    out["reml_criterion"] = m2ll
    out["converged"] = bool(best.success)
    return clean(out)  # type: ignore[no-any-return]
