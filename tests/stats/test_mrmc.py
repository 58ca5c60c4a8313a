"""Obuchowski-Rockette MRMC (jackknife covariances, Hillis df) against published output.

Published example: the Van Dyke et al. (1993) cine-MRI vs spin-echo MRI study, 5 readers x 114
cases x 2 modalities, ratings 1-5 (RJafroc's `dataset02`, MRMCaov's `VanDyke`).

* Data: tests/stats/data/vandyke.csv, written from MRMCaov's `data/VanDyke.RData`
  (https://github.com/brian-j-smith/MRMCaov, file data/VanDyke.RData, commit
  51de3301a6ec40e8dc32d2790073dff8dc6d9d0a; columns reader, treatment, case, truth, rating).
* Printed results: MRMCaov README.md, section "Getting Started",
  `summary(mrmc(empirical_auc(truth, rating), treatment, reader, case, data = VanDyke))`,
  package version 0.1.9 (https://github.com/brian-j-smith/MRMCaov/blob/
  26ed61845b849c7544c17099deafa3d0058c0722/README.md): random readers and cases, jackknife
  covariances. The same F = 4.456319, ddf = 15.25967, p = 0.05166569 are printed by RJafroc's
  documentation for `dataset02` (ORH analysis, Wilcoxon FOM) and the variance components by
  the MRMCaov JSS manuscript (docs/jss/MRMCaov.tex, fixed-readers jackknife example).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from app.stats.mrmc import (
    auc_foms,
    jackknife_covariance,
    mean_score_foms,
    mrmc_mean_difference,
    obuchowski_rockette,
    or_statistics,
)

DATA = Path(__file__).parent / "data" / "vandyke.csv"


def printed(value: float, digits: int) -> Any:
    """pytest.approx to the printed significant digits (half a unit in the last place)."""
    exponent = int(np.floor(np.log10(abs(value)))) - digits + 1
    return pytest.approx(value, abs=0.5 * 10.0**exponent)


@pytest.fixture(scope="module")
def vandyke() -> dict:
    d = pd.read_csv(DATA)
    assert d.shape == (1140, 5)
    # Modality order 2, 1 so that each difference is "1 - 2", as MRMCaov prints it.
    arms, readers, cases = [2, 1], sorted(d.reader.unique()), sorted(d.case.unique())
    table = d.pivot_table(index=["treatment", "reader"], columns="case", values="rating")
    table = table.reindex(pd.MultiIndex.from_product([arms, readers]))
    cube = table.to_numpy(float).reshape(2, len(readers), len(cases))
    truth = d.drop_duplicates("case").set_index("case").loc[cases, "truth"].to_numpy()
    fom, jack = auc_foms(cube, truth)
    return obuchowski_rockette(
        fom, jack, ["2", "1"], [str(r) for r in readers], fom_name="empirical AUC"
    )


def test_vandyke_variance_components(vandyke: dict) -> None:
    vc = vandyke["variance_components"]
    assert vc["var_reader"] == printed(0.0015349993, 8)
    assert vc["var_arm_reader"] == printed(0.0002004025, 7)
    assert vc["var"] == printed(0.0008022883, 7)
    assert vc["cov1"] == printed(0.0003466137, 7)
    assert vc["cov2"] == printed(0.0003440748, 7)
    assert vc["cov3"] == printed(0.0002390284, 7)
    assert vc["ms_t"] == printed(0.004796171, 7)
    assert vc["ms_tr"] == printed(0.0005510306, 7)
    assert vc["den"] == printed(0.001076263, 7)


def test_vandyke_global_test_and_difference(vandyke: dict) -> None:
    g = vandyke["global_test"]
    assert g["f"] == printed(4.456319, 7)
    assert g["df1"] == 1
    assert g["df2"] == printed(15.25967, 7)
    assert g["p_value"] == printed(0.05166569, 7)
    (comp,) = vandyke["comparisons"]
    assert comp["difference"] == "1 - 2"
    assert comp["estimate"] == printed(-0.04380032, 7)
    assert comp["se"] == printed(0.02074862, 7)
    assert comp["df"] == printed(15.25967, 7)
    assert comp["ci_low"] == printed(-0.0879594986, 9)
    assert comp["ci_high"] == printed(0.0003588544, 7)
    assert comp["t"] == printed(-2.110999, 7)
    assert comp["p_value"] == printed(0.05166569, 7)


def test_vandyke_single_modality_intervals(vandyke: dict) -> None:
    by_arm = {a["arm"]: a for a in vandyke["arm_foms"]}
    one, two = by_arm["1"], by_arm["2"]
    assert one["estimate"] == printed(0.8970370, 7)
    assert one["ms_r"] == printed(0.003082629, 7)
    assert one["cov2"] == printed(0.0004839618, 7)
    assert one["se"] == printed(0.03317360, 7)
    assert one["df"] == printed(12.74465, 7)
    assert one["ci_low"] == printed(0.8252236, 7)
    assert one["ci_high"] == printed(0.9688505, 7)
    assert two["estimate"] == printed(0.9408374, 7)
    assert two["se"] == printed(0.02156637, 7)
    assert two["df"] == printed(12.71019, 7)
    assert (two["ci_low"], two["ci_high"]) == (printed(0.8941378, 7), printed(0.9875369, 7))


def test_jackknife_of_a_mean_is_the_sample_covariance_over_n() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=(3, 4, 30))  # arms x readers x cases, complete
    fom, jack = mean_score_foms(y)
    assert np.allclose(fom, y.mean(axis=-1))
    cov = jackknife_covariance(jack.reshape(30, 12))
    assert np.allclose(cov, np.cov(y.reshape(12, 30)) / 30)


def test_batched_statistics_equal_one_study_at_a_time() -> None:
    rng = np.random.default_rng(2)
    cubes = rng.normal(size=(4, 2, 5, 20))
    fom, jack = mean_score_foms(cubes)
    batch = or_statistics(fom, jack)
    for s in range(4):
        one = or_statistics(fom[s], jack[s])
        assert batch["f"][s] == pytest.approx(one["f"])
        assert batch["ddf"][s] == pytest.approx(one["ddf"])
        assert batch["p"][s] == pytest.approx(one["p"])


def _scores(cube: np.ndarray, arms: list[str]) -> pd.DataFrame:
    rows = [
        {"rater": f"r{k}", "case": f"c{c}", "arm": arms[i], "item": "q", "score": cube[i, k, c]}
        for i in range(cube.shape[0])
        for k in range(cube.shape[1])
        for c in range(cube.shape[2])
        if np.isfinite(cube[i, k, c])
    ]
    return pd.DataFrame(rows)


def test_mean_difference_from_scores_matches_hand_formulas() -> None:
    rng = np.random.default_rng(3)
    base = rng.integers(1, 6, size=(4, 25)).astype(float)
    cube = np.stack([base, np.clip(base + rng.integers(0, 2, size=(4, 25)), 1, 5)])
    res = mrmc_mean_difference(_scores(cube, ["std", "dual"]), ["std", "dual"])
    assert res["note"] is None and res["n_readers"] == 4 and res["n_cases"] == 25
    (comp,) = res["comparisons"]
    d = (cube[1] - cube[0]).mean(axis=1)  # per-reader mean difference
    assert comp["estimate"] == pytest.approx(d.mean())
    # Two arms: MS(T:R) = var(d_j)/2 and Cov2 - Cov3 = mean off-diagonal covariance of the
    # reader differences / 2, the covariance being the sample covariance over cases / c.
    cov_d = np.cov(cube[1] - cube[0]) / 25
    off = cov_d[~np.eye(4, dtype=bool)].mean()
    den = d.var(ddof=1) / 2 + 4 * max(off / 2, 0)
    assert comp["se"] == pytest.approx(np.sqrt(2 * den / 4))
    assert comp["df"] == pytest.approx(den**2 / ((d.var(ddof=1) / 2) ** 2 / 3))


def test_mean_difference_bad_input_gives_messages() -> None:
    cube = np.ones((2, 1, 10))
    one_reader = mrmc_mean_difference(_scores(cube, ["a", "b"]), ["a", "b"])
    assert one_reader["comparisons"] == [] and "at least 2 readers" in one_reader["note"]
    few_cases = mrmc_mean_difference(_scores(np.ones((2, 3, 2)), ["a", "b"]), ["a", "b"])
    assert "at least 3 cases" in few_cases["note"]
    no_arm = mrmc_mean_difference(_scores(np.ones((1, 3, 10)), ["a"]), ["a", "b"])
    assert "b have no ratings" in no_arm["note"]
    flat = mrmc_mean_difference(_scores(np.full((2, 3, 10), 3.0), ["a", "b"]), ["a", "b"])
    assert "variance estimate is zero" in flat["note"] and flat["comparisons"] == []
    partial = np.ones((2, 3, 10))
    partial[1, 2, :] = np.nan  # reader r2 never scored arm b
    partial[1, :2, :] = 2.0
    res = mrmc_mean_difference(_scores(partial, ["a", "b"]), ["a", "b"])
    assert res["n_readers"] == 2 and "r2 scored fewer than two cases" in res["notes"][0]
