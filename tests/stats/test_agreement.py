"""Agreement statistics against published values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.stats import icc, inter_rater_agreement, intra_rater_agreement, krippendorff_alpha

NAN = np.nan
# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", observers A-D x 12 units.
KRIPPENDORFF_2011 = np.array(
    [
        [1, 2, 3, 3, 2, 1, 4, 1, 2, NAN, NAN, NAN],
        [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NAN, 3],
        [NAN, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NAN],
        [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NAN],
    ]
)

# Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges.
SHROUT_FLEISS = np.array(
    [[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]]
)


@pytest.mark.parametrize(
    ("level", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)]
)
def test_krippendorff_published_example(level: str, expected: float) -> None:
    alpha = krippendorff_alpha(KRIPPENDORFF_2011, level, value_domain=[1, 2, 3, 4, 5])  # type: ignore[arg-type]
    assert alpha == pytest.approx(expected, abs=5e-4)


def test_krippendorff_undefined_without_variation() -> None:
    assert krippendorff_alpha([[3, 3, 3], [3, 3, 3]], "ordinal") is None
    assert krippendorff_alpha([[1, NAN], [NAN, 2]], "ordinal") is None  # nothing pairable


def test_icc_shrout_fleiss_table() -> None:
    res = icc(SHROUT_FLEISS)
    assert res["icc2_1"] == pytest.approx(0.29, abs=0.005)
    assert res["icc2_k"] == pytest.approx(0.62, abs=0.005)
    # Confidence limits as printed by R's psych::ICC for the same table.
    assert res["icc2_1_ci"] == pytest.approx([0.019, 0.76], abs=0.005)
    assert res["icc2_k_ci"] == pytest.approx([0.071, 0.93], abs=0.005)
    assert res["f"] == pytest.approx(11.03, abs=0.01)
    assert (res["df1"], res["df2"]) == (5, 15)


def test_icc_perfect_agreement_is_one() -> None:
    table = np.repeat(np.arange(1, 9, dtype=float)[:, None], 3, axis=1)
    table[:, 1] += 0.0
    res = icc(table + np.array([0.0, 1e-9, 0.0]))
    assert res["icc2_1"] == pytest.approx(1.0, abs=1e-6)


def _long(matrix: np.ndarray, arm: str) -> pd.DataFrame:
    rows = []
    for r, row in enumerate(matrix):
        for c, value in enumerate(row):
            if np.isfinite(value):
                rows.append(
                    {
                        "rater": f"r{r}",
                        "case": str(c),
                        "arm": arm,
                        "item": "q",
                        "score": int(value),
                        "is_repeat": False,
                    }
                )
    return pd.DataFrame(rows)


def test_inter_rater_agreement_per_arm_matches_direct_alpha() -> None:
    scores = pd.concat(
        [_long(KRIPPENDORFF_2011, "std"), _long(SHROUT_FLEISS.T[:, :5] % 5 + 1, "adv")]
    )
    res = inter_rater_agreement(scores, ["std", "adv"], levels=[1, 2, 3, 4, 5])
    std = res["per_arm"]["std"]
    assert std["alpha_ordinal"] == pytest.approx(0.815, abs=5e-4)
    assert std["n_raters"] == 4 and std["n_units"] == 12
    assert std["n_complete_units"] == 8  # units 2-9; every other unit misses an observer
    assert res["overall"]["n_units"] == 12 + 5


def test_intra_rater_kappa_from_repeats() -> None:
    rows = []
    for i, (first, again) in enumerate([(1, 1), (1, 2), (2, 1), (2, 2)]):
        for rep, score in ((False, first), (True, again)):
            rows.append(
                {
                    "rater": "a",
                    "case": str(i),
                    "arm": "x",
                    "item": "q",
                    "score": score,
                    "is_repeat": rep,
                }
            )
    res = intra_rater_agreement(pd.DataFrame(rows), levels=[1, 2])
    assert res["n_repeat_pairs"] == 4
    # Observed agreement 0.5 equals chance agreement 0.5: kappa is exactly 0.
    assert res["pooled"]["kappa_quadratic"] == pytest.approx(0.0)
    assert res["pooled"]["exact_agreement"] == pytest.approx(0.5)
