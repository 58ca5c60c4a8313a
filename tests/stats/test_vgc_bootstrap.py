"""VGC analysis and the two-way (readers x cases) bootstrap, checked by brute force."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from app.stats.bootstrap import headline_intervals, two_way_weights
from app.stats.paired import rank_biserial
from app.stats.vgc import auc_from_histograms, vgc_analysis, vgc_curve


def _study(n_raters: int = 4, n_cases: int = 30, shift: float = 0.6, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    case_eff = rng.normal(size=n_cases)
    rows = []
    for k in range(n_raters):
        bias = rng.normal(scale=0.3)
        for c in range(n_cases):
            for arm, delta in (("std", 0.0), ("dual", shift)):
                latent = 3 + case_eff[c] + bias + delta + rng.normal(scale=0.7)
                rows.append(
                    {
                        "rater": f"r{k}",
                        "case": f"c{c:02d}",
                        "arm": arm,
                        "item": "q",
                        "score": int(np.clip(np.rint(latent), 1, 5)),
                        "is_repeat": False,
                    }
                )
    return pd.DataFrame(rows)


def test_auc_vgc_is_the_mann_whitney_probability() -> None:
    ref = np.array([1, 2, 2, 3, 3, 3, 4])
    test = np.array([2, 3, 4, 4, 5, 5])
    h = lambda x: np.bincount(x, minlength=6)[1:]  # noqa: E731
    u = stats.mannwhitneyu(test, ref).statistic  # counts ties as one half
    assert auc_from_histograms(h(ref), h(test)) == pytest.approx(u / (len(ref) * len(test)))
    curve = vgc_curve(h(ref), h(test))
    assert curve[0] == {"x": 0.0, "y": 0.0} and curve[-1] == {"x": 1.0, "y": 1.0}
    # Trapezoidal area under the operating points equals the AUC.
    x, y = np.array([p["x"] for p in curve]), np.array([p["y"] for p in curve])
    assert np.trapezoid(y, x) == pytest.approx(auc_from_histograms(h(ref), h(test)))


def test_vgc_per_rater_pooled_and_two_way_interval() -> None:
    scores = _study()
    res = vgc_analysis(scores, "std", "dual", [1, 2, 3, 4, 5], n_boot=400, seed=9)
    assert res["note"] is None and res["n_raters"] == 4 and res["n_cases"] == 30
    for row in res["per_rater"]:
        mine = scores[scores["rater"] == row["rater"]]
        a = mine[mine["arm"] == "std"]["score"].to_numpy()
        b = mine[mine["arm"] == "dual"]["score"].to_numpy()
        assert row["auc"] == pytest.approx(stats.mannwhitneyu(b, a).statistic / (30 * 30))
        assert row["ci_low"] < row["auc"] < row["ci_high"]
    assert res["auc"] == pytest.approx(np.mean([r["auc"] for r in res["per_rater"]]))
    assert 0.5 < res["ci_low"] < res["auc"] < res["ci_high"]
    again = vgc_analysis(scores, "std", "dual", [1, 2, 3, 4, 5], n_boot=400, seed=9)
    assert (again["ci_low"], again["ci_high"]) == (res["ci_low"], res["ci_high"])


def _replicate(scores: pd.DataFrame, rater_idx: np.ndarray, case_idx: np.ndarray) -> pd.DataFrame:
    """One bootstrap sample built explicitly: every drawn rater x every drawn case."""
    raters = sorted(scores["rater"].unique())
    cases = sorted(scores["case"].unique())
    parts = []
    for i, r in enumerate(rater_idx):
        for j, c in enumerate(case_idx):
            part = scores[(scores["rater"] == raters[r]) & (scores["case"] == cases[c])].copy()
            part["rater"], part["case"] = f"R{i}", f"C{j}"
            parts.append(part)
    return pd.concat(parts, ignore_index=True)


def test_two_way_replicates_equal_explicit_resamples() -> None:
    scores = _study(n_raters=3, n_cases=12)
    n_boot, seed = 3, 11
    rng = np.random.default_rng(seed)  # the draws two_way_weights makes, in its order
    rater_draws = rng.integers(0, 3, size=(n_boot, 3))
    case_draws = rng.integers(0, 12, size=(n_boot, 12))
    wr, wc = two_way_weights(3, 12, n_boot, seed)
    assert np.array_equal(wr[0], np.bincount(rater_draws[0], minlength=3))
    assert np.array_equal(wc[2], np.bincount(case_draws[2], minlength=12))

    # The weighted statistics equal the statistics of the explicit resamples.
    from app.stats.bootstrap import _rank_biserial_two_way, rater_case_table, weighted_table_mean
    from app.stats.frames import paired_differences
    from app.stats.vgc import _onehot

    diffs = paired_differences(scores, "std", "dual")
    table, _, _ = rater_case_table(diffs, "diff")
    means = weighted_table_mean(table, wr, wc)
    _, r_boot = _rank_biserial_two_way(table, wr, wc)
    for b in range(n_boot):
        sample = _replicate(scores, rater_draws[b], case_draws[b])
        d = paired_differences(sample, "std", "dual")["diff"].to_numpy()
        assert means[b] == pytest.approx(d.mean())
        assert r_boot[b] == pytest.approx(rank_biserial(d, n_boot=0)["r"])
        levels = np.arange(1, 6, dtype=float)
        h = {}
        for arm in ("std", "dual"):
            t = sample[sample["arm"] == arm].pivot(index="rater", columns="case", values="score")
            h[arm] = _onehot(t.to_numpy(float), levels).sum(axis=1)
        pooled = auc_from_histograms(h["std"], h["dual"]).mean()
        full = vgc_analysis(sample, "std", "dual", [1, 2, 3, 4, 5], n_boot=0)
        assert full["auc"] == pytest.approx(pooled)


def test_headline_intervals() -> None:
    scores = _study()
    res = headline_intervals(scores, ["std", "dual"], n_boot=300, seed=3)
    assert res["note"] is None and res["resampled"].startswith("readers and cases")
    (comp,) = res["comparisons"]
    d = scores.pivot_table(index=["rater", "case"], columns="arm", values="score")
    assert comp["mean_diff"]["estimate"] == pytest.approx((d["dual"] - d["std"]).mean())
    assert (
        comp["mean_diff"]["ci_low"] < comp["mean_diff"]["estimate"] < comp["mean_diff"]["ci_high"]
    )
    lo, hi = comp["rank_biserial"]["ci_low"], comp["rank_biserial"]["ci_high"]
    assert lo < comp["rank_biserial"]["estimate"] < hi
    means = {a["arm"]: a["mean"] for a in res["arms"]}
    assert means["std"]["estimate"] == pytest.approx(scores[scores.arm == "std"].score.mean())


def test_bad_input_gives_messages_not_errors() -> None:
    scores = _study(n_raters=1, n_cases=5)
    res = headline_intervals(scores, ["std", "dual"], n_boot=50)
    assert res["comparisons"] == [] and "at least two readers" in res["note"]
    one = vgc_analysis(scores, "std", "dual", [1, 2, 3, 4, 5], n_boot=50)
    assert one["auc"] is not None and "one rater" in one["note"]
    missing = vgc_analysis(scores[scores.arm == "std"], "std", "dual", [1, 2, 3, 4, 5])
    assert missing["auc"] is None and "dual have no scores" in missing["note"]
    flat = scores.assign(score=3)
    same = vgc_analysis(flat, "std", "dual", [1, 2, 3, 4, 5], n_boot=50)
    assert same["auc"] == 0.5
