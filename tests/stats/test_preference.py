"""Preference and blinding tests against exact binomial values."""

from __future__ import annotations

import pandas as pd
import pytest

from app.stats import blinding_check, preference_test


def _prefs(choices: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "rater": "r1",
                "case": str(i),
                "left_arm": left,
                "right_arm": right,
                "preference": pref,
                "is_repeat": False,
            }
            for i, (left, right, pref) in enumerate(choices)
        ]
    )


def test_binomial_on_hand_made_counts() -> None:
    # adv preferred 7 times, std 3 times, 2 "no preference".
    choices = (
        [("std", "adv", "right")] * 4
        + [("adv", "std", "left")] * 3
        + [("std", "adv", "left")] * 2
        + [("adv", "std", "right")]
        + [("std", "adv", "none")] * 2
    )
    res = preference_test(_prefs(choices), "std", "adv")
    assert res["counts"] == {"std": 3, "adv": 7, "none": 2}
    assert res["prefer_b"]["n"] == 10
    # P(X >= 7 | n=10, 1/2) = 176/1024; two-sided doubles it.
    assert res["prefer_b"]["p_value"] == pytest.approx(352 / 1024)
    assert res["prefer_b"]["ci_low"] == pytest.approx(0.3475, abs=1e-4)
    assert res["prefer_b"]["ci_high"] == pytest.approx(0.9333, abs=1e-4)
    # Left won 3 + 2 = 5 of 10 decided trials.
    assert res["side_bias"]["left_preferred"] == 5
    assert res["side_bias"]["p_value"] == pytest.approx(1.0)


def test_repeats_are_excluded() -> None:
    prefs = _prefs([("std", "adv", "right")] * 3)
    prefs.loc[0, "is_repeat"] = True
    assert preference_test(prefs, "std", "adv")["n_trials"] == 2


def test_blinding_check() -> None:
    guesses = pd.DataFrame(
        [
            {
                "rater": "r",
                "case": str(i),
                "left_arm": "std",
                "right_arm": "adv",
                "guess": "right" if i < 9 else "left",
            }
            for i in range(10)
        ]
        + [{"rater": "r", "case": "x", "left_arm": "adv", "right_arm": "std", "guess": "none"}]
    )
    res = blinding_check(guesses, "adv")
    assert res["dont_know"] == 1
    assert res["correct"]["k"] == 9 and res["correct"]["n"] == 10
    assert res["correct"]["p_value"] == pytest.approx(22 / 1024)


def test_three_arm_study_reports_every_pair() -> None:
    from app.stats.summary import analyze

    rows, prefs = [], []
    arms = ["std", "adv", "dual"]
    for r in range(2):
        for c in range(7):  # 14 pairs > 13: normal approximation, no slow permutation test
            for k, arm in enumerate(arms):
                rows.append(
                    {
                        "rater": f"r{r}",
                        "case": str(c),
                        "arm": arm,
                        "item": "q",
                        "score": 1 + k + (c % 2),
                        "is_repeat": False,
                    }
                )
            for left, right in (("std", "adv"), ("adv", "dual"), ("dual", "std")):
                better = right if arms.index(right) > arms.index(left) else left
                prefs.append(
                    {
                        "rater": f"r{r}",
                        "case": str(c),
                        "left_arm": left,
                        "right_arm": right,
                        "preference": "left" if better == left else "right",
                        "is_repeat": False,
                    }
                )
    res = analyze(
        pd.DataFrame(rows),
        pd.DataFrame(prefs),
        arms=arms,
        levels={"q": [1, 2, 3, 4, 5, 6]},
        n_boot=20,
    )
    assert [(p["arm_a"], p["arm_b"]) for p in res["preferences"]] == [
        ("std", "adv"),
        ("std", "dual"),
        ("adv", "dual"),
    ]
    assert all(p["counts"][p["arm_b"]] == 14 for p in res["preferences"])
    item = res["items"][0]
    assert len(item["comparisons"]) == 2
    # Identical ranking in 14 blocks of 3: 12/(14*3*4) * (14^2+28^2+42^2) - 3*14*4 = 28.
    assert item["multi_arm"]["friedman"]["statistic"] == pytest.approx(28.0)
