"""AUROC, bootstrap CI, accuracy and ROC points against hand-computed values."""

from __future__ import annotations

import math

import numpy as np

from ml.evaluation import accuracy, auroc, bootstrap_auroc_ci, macro_auroc, roc_curve_points


def test_auroc_known_values() -> None:
    # Pairs (pos, neg): 0.35 vs 0.1 ✓, 0.35 vs 0.4 ✗, 0.8 vs both ✓ → 3/4.
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == 0.75
    assert auroc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5  # tie counts one half
    assert auroc(np.array([1, 0, 1]), np.array([0.9, 0.1, 0.8])) == 1.0
    assert math.isnan(auroc(np.array([1, 1]), np.array([0.2, 0.3])))


def test_auroc_matches_sklearn_on_random_data() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)  # rounding creates ties
    assert abs(auroc(y, s) - roc_auc_score(y, s)) < 1e-12


def test_bootstrap_ci_brackets_estimate_and_shrinks_with_n() -> None:
    rng = np.random.default_rng(1)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 2, n)
        return y, rng.normal(size=n) + 1.0 * y

    y, s = sample(100)
    lo, hi = bootstrap_auroc_ci(y, s, n_bootstrap=500, seed=0)
    assert lo < auroc(y, s) < hi
    y2, s2 = sample(1600)
    lo2, hi2 = bootstrap_auroc_ci(y2, s2, n_bootstrap=200, seed=0)
    assert (hi2 - lo2) < (hi - lo) / 2  # width ∝ 1/√n: 16× the data, ¼ the width
    # Binormal AUROC for d'=1 is Φ(1/√2) ≈ 0.760; the CI is about ±0.025 wide here.
    assert abs(auroc(y2, s2) - 0.7602) < 0.04 and hi2 - lo2 < 0.1
    assert bootstrap_auroc_ci(y, s, n_bootstrap=500, seed=0) == (lo, hi)  # seeded
    assert all(math.isnan(v) for v in bootstrap_auroc_ci(np.ones(5), np.arange(5.0)))


def test_macro_auroc_multiclass_and_ignored_multilabel_entries() -> None:
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.3, 0.2]])
    per, macro = macro_auroc(probs, np.array([0, 1, 2, 0]), multilabel=False)
    assert per == [1.0, 1.0, 1.0] and macro == 1.0
    ml_targets = np.array([[1, -1], [0, 1], [1, 0], [0, -1]], dtype=float)
    ml_probs = np.array([[0.9, 0.0], [0.1, 0.9], [0.7, 0.2], [0.2, 1.0]])
    per2, _ = macro_auroc(ml_probs, ml_targets, multilabel=True)
    assert per2 == [1.0, 1.0]  # the -1 rows (which would spoil class 1) are ignored
    assert accuracy(ml_probs, ml_targets, multilabel=True) == 1.0
    assert accuracy(probs, np.array([0, 1, 2, 1]), multilabel=False) == 0.75


def test_roc_points() -> None:
    fpr, tpr = roc_curve_points(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    np.testing.assert_allclose(fpr, [0, 0, 0.5, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1, 1])
    assert abs(np.trapezoid(tpr, fpr) - 0.75) < 1e-12
