"""Preference and blinding tests against exact binomial values."""

from __future__ import annotations

import pandas as pd
import pytest

from app.stats import blinding_check, preference_test


def _prefs(choices: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"rater": "r1", "case": str(i), "left_arm": left, "right_arm": right,
          "preference": pref, "is_repeat": False}
         for i, (left, right, pref) in enumerate(choices)]
    )


def test_binomial_on_hand_made_counts() -> None:
    # adv preferred 7 times, std 3 times, 2 "no preference".
    choices = (
        [("std", "adv", "right")] * 4 + [("adv", "std", "left")] * 3
        + [("std", "adv", "left")] * 2 + [("adv", "std", "right")]
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
        [{"rater": "r", "case": str(i), "left_arm": "std", "right_arm": "adv",
          "guess": "right" if i < 9 else "left"} for i in range(10)]
        + [{"rater": "r", "case": "x", "left_arm": "adv", "right_arm": "std", "guess": "none"}]
    )
    res = blinding_check(guesses, "adv")
    assert res["dont_know"] == 1
    assert res["correct"]["k"] == 9 and res["correct"]["n"] == 10
    assert res["correct"]["p_value"] == pytest.approx(22 / 1024)
