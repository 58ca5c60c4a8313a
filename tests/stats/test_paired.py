"""Paired tests against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from app.stats import friedman_and_pairwise, paired_comparison, rank_biserial, wilcoxon_pratt


def test_wilcoxon_exact_small_sample() -> None:
    # T+ = 15, T- = 6; 14 of the 64 sign patterns give T <= 6, so two-sided p = 28/64.
    res = wilcoxon_pratt([1, 2, 3, 4, 5, -6])
    assert res["statistic"] == 6
    assert res["p_value"] == pytest.approx(28 / 64)
    assert res["method"] == "exact"


def test_wilcoxon_pratt_zeros_normal_approximation() -> None:
    d = [0, 0, 1, 2, -3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    # Pratt: zeros take ranks 1.5, 1.5 then are dropped; |1|..|13| take ranks 3..15, so
    # T+ = (3 + ... + 15) - 5 = 112 and T- = 5.
    mean = 15 * 16 / 4 - 2 * 3 / 4
    var = (15 * 16 * 31 - 2 * 3 * 5) / 24
    z = (112 - mean) / math.sqrt(var)
    res = wilcoxon_pratt(d)
    assert res["p_value"] == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-9)
    assert res["n_zero"] == 2
    assert res["method"] == "normal approximation"
    assert rank_biserial(d, n_boot=0)["r"] == pytest.approx((112 - 5) / 117)


def test_wilcoxon_all_zero_and_empty() -> None:
    assert wilcoxon_pratt([0, 0, 0])["p_value"] == 1.0
    assert wilcoxon_pratt([])["p_value"] is None


def test_rank_biserial_matches_direct_ranking() -> None:
    rng = np.random.default_rng(3)
    d = rng.integers(-4, 5, size=300).astype(float)
    ranks = stats.rankdata(np.abs(d))
    r_plus, r_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    res = rank_biserial(d, n_boot=500, seed=1)
    assert res["r"] == pytest.approx((r_plus - r_minus) / (r_plus + r_minus))
    assert res["ci_low"] < res["r"] < res["ci_high"]
    assert res == rank_biserial(d, n_boot=500, seed=1)  # seeded: reproducible


def test_cluster_bootstrap_is_wider_for_clustered_data() -> None:
    rng = np.random.default_rng(0)
    case_effect = np.repeat(rng.normal(0, 2, 40), 6)
    d = np.round(case_effect + rng.normal(0.3, 0.5, case_effect.size))
    clusters = np.repeat(np.arange(40), 6)
    naive = rank_biserial(d, n_boot=1000)
    clustered = rank_biserial(d, clusters, n_boot=1000)
    assert naive["r"] == clustered["r"]
    width = clustered["ci_high"] - clustered["ci_low"]
    assert width > 1.5 * (naive["ci_high"] - naive["ci_low"])


def _scores(table: dict[tuple[str, str], tuple[int, int]]) -> pd.DataFrame:
    rows = []
    for (rater, case), (a, b) in table.items():
        rows.append(
            {
                "rater": rater,
                "case": case,
                "arm": "std",
                "item": "q",
                "score": a,
                "is_repeat": False,
            }
        )
        rows.append(
            {
                "rater": rater,
                "case": case,
                "arm": "adv",
                "item": "q",
                "score": b,
                "is_repeat": False,
            }
        )
    return pd.DataFrame(rows)


def test_paired_comparison_levels() -> None:
    table = {
        ("r1", "c1"): (2, 4),
        ("r1", "c2"): (3, 3),
        ("r1", "c3"): (1, 2),
        ("r2", "c1"): (2, 5),
        ("r2", "c2"): (2, 3),
        ("r2", "c3"): (4, 3),
    }
    scores = _scores(table)
    # A repeat that contradicts everything must not enter the primary analysis.
    scores = pd.concat(
        [
            scores,
            pd.DataFrame(
                [
                    {
                        "rater": "r1",
                        "case": "c1",
                        "arm": "std",
                        "item": "q",
                        "score": 5,
                        "is_repeat": True,
                    },
                    {
                        "rater": "r1",
                        "case": "c1",
                        "arm": "adv",
                        "item": "q",
                        "score": 1,
                        "is_repeat": True,
                    },
                ]
            ),
        ]
    )
    res = paired_comparison(scores, "std", "adv", n_boot=200)
    assert res["n_raters"] == 2 and res["n_cases"] == 3
    rc = res["rater_case"]
    assert rc["n"] == 6
    assert rc["mean_diff"] == pytest.approx((2 + 0 + 1 + 3 + 1 - 1) / 6)
    assert rc["wilcoxon"]["p_value"] == pytest.approx(
        stats.wilcoxon([2, 0, 1, 3, 1, -1], zero_method="pratt").pvalue
    )
    cm = res["case_means"]
    assert cm["n"] == 3
    assert cm["mean_diff"] == pytest.approx(np.mean([2.5, 0.5, 0.0]))
    per_rater = {row["rater"]: row for row in res["per_rater"]}
    assert per_rater["r1"]["mean_diff"] == pytest.approx(1.0)
    # t interval: mean 1, sd 1, n 3.
    half = stats.t.ppf(0.975, 2) * 1 / math.sqrt(3)
    assert per_rater["r1"]["mean_diff_ci_high"] == pytest.approx(1 + half)


def test_friedman_known_value_and_holm() -> None:
    rows = []
    for block in range(4):
        for arm, score in (("a", 1), ("b", 2), ("c", 3)):
            rows.append(
                {
                    "rater": "r",
                    "case": str(block),
                    "arm": arm,
                    "item": "q",
                    "score": score + (block % 2),
                    "is_repeat": False,
                }
            )
    res = friedman_and_pairwise(pd.DataFrame(rows), ["a", "b", "c"], n_boot=50)
    # Identical ranking in 4 blocks of 3: chi2 = 12/(4*3*4) * (4^2+8^2+12^2) - 3*4*4 = 8.
    assert res["friedman"]["statistic"] == pytest.approx(8.0)
    assert res["friedman"]["p_value"] == pytest.approx(math.exp(-4.0))
    pvals = sorted(p["wilcoxon"]["p_value"] for p in res["pairwise"])
    holm = sorted(p["p_holm"] for p in res["pairwise"])
    assert holm[0] == pytest.approx(min(1.0, 3 * pvals[0]))


def test_friedman_needs_three_arms() -> None:
    res = friedman_and_pairwise(
        _scores({("r", "c"): (1, 2), ("r", "d"): (2, 3)}), ["std", "adv"], n_boot=10
    )
    assert res["friedman"]["statistic"] is None
    assert "three arms" in res["friedman"]["note"]


def test_pooled_mean_ci_is_robust_to_case_clustering() -> None:
    # Three raters agree exactly on every case: the 3n pairs carry only n cases' information,
    # so the pooled CI must equal the t interval of the n case means, not shrink by sqrt(3).
    case_diffs = [2, 0, 1, 1, 3, -1, 0, 2]
    rows = []
    for rater in ("r1", "r2", "r3"):
        for c, d in enumerate(case_diffs):
            rows += [
                {"rater": rater, "case": str(c), "arm": "std", "item": "q", "score": 2},
                {"rater": rater, "case": str(c), "arm": "adv", "item": "q", "score": 2 + d},
            ]
    res = paired_comparison(pd.DataFrame(rows), "std", "adv", n_boot=50)
    rc, cm = res["rater_case"], res["case_means"]
    assert rc["n"] == 24 and cm["n"] == 8
    assert rc["mean_diff_ci_low"] == pytest.approx(cm["mean_diff_ci_low"])
    assert rc["mean_diff_ci_high"] == pytest.approx(cm["mean_diff_ci_high"])
    sd = np.std(case_diffs, ddof=1)
    half = stats.t.ppf(0.975, 7) * sd / math.sqrt(8)
    assert rc["mean_diff_ci_high"] == pytest.approx(np.mean(case_diffs) + half)
