"""Classification metrics with known-value semantics: AUROC (Mann-Whitney), bootstrap CI, accuracy.

AUROC is computed from ranks (ties count one half), which equals the area under the empirical
ROC curve; it is nan when a class has only positives or only negatives, rather than a misleading
0.5. Bootstrap CIs resample cases with replacement (percentile method), skipping resamples that
contain one class only.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import rankdata

__all__ = [
    "accuracy",
    "auroc",
    "bootstrap_auroc_ci",
    "macro_auroc",
    "one_vs_rest",
    "roc_curve_points",
]


def auroc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """P(score of a random positive > score of a random negative), ties counted 1/2."""
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = rankdata(s)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _auroc_batch(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """AUROC of each row of (B×n) label/score matrices; nan for one-class rows."""
    ranks = rankdata(s, axis=1)
    n_pos = y.sum(1)
    n_neg = y.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        out = ((ranks * y).sum(1) - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    out[(n_pos == 0) | (n_neg == 0)] = np.nan
    return out


def bootstrap_auroc_ci(
    y_true: np.ndarray,
    scores: np.ndarray,
    n_bootstrap: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap (1-alpha) CI of the AUROC; (nan, nan) when undefined."""
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if n_bootstrap <= 0 or y.all() or not y.any():
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    values: list[np.ndarray] = []
    chunk = max(1, min(n_bootstrap, 2_000_000 // max(len(y), 1)))
    done = 0
    while done < n_bootstrap:
        b = min(chunk, n_bootstrap - done)
        idx = rng.integers(0, len(y), size=(b, len(y)))
        values.append(_auroc_batch(y[idx], s[idx]))
        done += b
    vals = np.concatenate(values)
    vals = vals[~np.isnan(vals)]
    if vals.size == 0:
        return (math.nan, math.nan)
    lo, hi = np.quantile(vals, [alpha / 2.0, 1.0 - alpha / 2.0])
    return (float(lo), float(hi))


def one_vs_rest(targets: np.ndarray, num_classes: int, multilabel: bool) -> np.ndarray:
    """N×K 0/1 matrix (−1 kept for ignored multi-label entries)."""
    t = np.asarray(targets)
    if multilabel:
        return t.astype(np.float64)
    return np.eye(num_classes)[t.astype(int)]


def macro_auroc(
    probs: np.ndarray, targets: np.ndarray, multilabel: bool
) -> tuple[list[float], float]:
    """(per-class AUROC, mean over classes where it is defined)."""
    k = probs.shape[1]
    onehot = one_vs_rest(targets, k, multilabel)
    per = []
    for c in range(k):
        valid = onehot[:, c] >= 0
        per.append(auroc(onehot[valid, c], probs[valid, c]))
    defined = [v for v in per if not math.isnan(v)]
    return per, (float(np.mean(defined)) if defined else math.nan)


def accuracy(probs: np.ndarray, targets: np.ndarray, multilabel: bool) -> float:
    """Top-1 accuracy (multi-class) or element-wise accuracy at 0.5 over labelled entries."""
    if len(targets) == 0:
        return math.nan
    if multilabel:
        t = np.asarray(targets)
        valid = t >= 0
        return float(((probs >= 0.5) == (t == 1))[valid].mean()) if valid.any() else math.nan
    return float((probs.argmax(1) == np.asarray(targets)).mean())


def roc_curve_points(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) of the empirical ROC curve, from (0,0) to (1,1), ties as one step."""
    y = np.asarray(y_true).astype(bool).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    tpr = np.r_[0.0, tps / max(int(y.sum()), 1)]
    fpr = np.r_[0.0, fps / max(int((~y).sum()), 1)]
    return fpr, tpr
