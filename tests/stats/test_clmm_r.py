"""The CLMM runner: R for real where installed (always under CI), clear messages otherwise."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from app.stats.clmm_r import INSTALL_HINT, fit_clmm, precheck, r_versions, render_script

HAVE_R = shutil.which("Rscript") is not None
needs_r = pytest.mark.skipif(
    not HAVE_R and os.environ.get("CI") != "true",
    reason=f"Rscript not installed ({INSTALL_HINT}); CI installs it and runs these tests",
)


def _scores(
    n_raters: int = 4, n_cases: int = 24, shift: float = 1.2, seed: int = 8
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    case_eff = rng.normal(size=n_cases)
    rows = []
    for k in range(n_raters):
        for c in range(n_cases):
            for arm, delta in (("standard", 0.0), ('dual "BN"', shift)):
                latent = case_eff[c] + 0.3 * k + delta + rng.logistic()
                score = int(np.digitize(latent, [-1.5, -0.3, 0.7, 1.8])) + 1
                rows.append(
                    {
                        "rater": f"reader{k}",
                        "case": str(c),
                        "arm": arm,
                        "item": "highlight",
                        "score": score,
                        "is_repeat": False,
                    }
                )
    return pd.DataFrame(rows)


def test_without_r_the_result_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADSAL_RSCRIPT", "")
    res = fit_clmm(_scores(), item="highlight", reference="standard")
    assert res["status"] == "unavailable" and res["available"] is False
    assert INSTALL_HINT in res["message"] and res["primary"] is None
    assert r_versions()["available"] is False


def test_bad_input_is_a_message_before_r_is_called(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RADSAL_RSCRIPT", "/nonexistent/Rscript")  # would fail if it were run
    s = _scores()
    flat = s.assign(score=3)
    assert "same score" in fit_clmm(flat, item="highlight", reference="standard")["message"]
    one_arm = s[s["arm"] == "standard"]
    assert "only one arm" in precheck(one_arm, "highlight", "standard")
    assert "reference arm 'x'" in precheck(s, "highlight", "x")
    assert "one rater" in precheck(s[s["rater"] == "reader0"], "highlight", "standard")
    assert "no scores for item 'other'" in precheck(s, "other", "standard")
    res = fit_clmm(s.iloc[:0], item="highlight", reference="standard")
    assert res["status"] == "skipped" and "no scores" in res["message"]


def test_a_failing_r_is_a_message_not_an_exception(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "Rscript"
    fake.write_text("#!/bin/sh\necho 'Error: something broke' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("RADSAL_RSCRIPT", str(fake))
    res = fit_clmm(_scores(), item="highlight", reference="standard")
    assert res["status"] == "failed" and "something broke" in res["message"]
    assert res["retryable"] is True  # a crash is not cached as the answer for these data
    monkeypatch.setenv("RADSAL_RSCRIPT", "/nonexistent/Rscript")
    res = fit_clmm(_scores(), item="highlight", reference="standard")
    assert res["status"] == "failed" and "running R failed" in res["message"]


def test_rendered_script_cannot_be_broken_out_of() -> None:
    text = render_script(
        {
            "STUDY_NAME": 'x")\nsystem("touch /tmp/pwned")\n#',
            "ITEM": "q",
            "REFERENCE_ARM": 'a"b',
            "CSV_FILE": "d.csv",
            "SCALE": "5",
            "STUDY_ID": "1",
            "EXPORTED_AT": "now",
        }
    )
    assert '\nsystem("touch' not in text
    assert 'option("reference", "a\\"b")' in text


@needs_r
def test_clmm_fitted_by_r() -> None:
    res = fit_clmm(_scores(), item="highlight", reference="standard", timeout_s=600)
    assert res["status"] == "ok", res["message"]
    assert res["software"]["R"] and res["software"]["ordinal"]
    assert res["data"]["n_obs"] == 4 * 24 * 2 and res["data"]["n_raters"] == 4
    (effect,) = res["primary"]["arm_effects"]
    assert effect["arm"] == 'dual "BN"'
    assert effect["odds_ratio"] == pytest.approx(np.exp(effect["log_odds_ratio"]))
    assert 1.0 < effect["ci_low"] < effect["odds_ratio"] < effect["ci_high"]
    assert effect["p_value"] < 0.01
    assert len(res["primary"]["thresholds"]) == len(res["data"]["levels"]) - 1
    groups = {r["group"] for r in res["primary"]["random_effects"]}
    assert groups == {"rater", "case"}
    assert res["primary"]["lrt"]["df"] == 1 and res["primary"]["lrt"]["p_value"] < 0.01
    sens = res["sensitivity"]
    assert sens["model"] == "score ~ arm + (1 + arm | rater) + (1 | case)"
    assert sens["error"] is None or isinstance(sens["error"], str)
    versions = r_versions()
    assert versions["available"] and versions["R"] == res["software"]["R"]


@needs_r
def test_single_level_inside_r_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # Bypass the Python pre-check to prove the R script itself reports bad input as JSON.
    monkeypatch.setattr("app.stats.clmm_r.precheck", lambda *a: None)
    res = fit_clmm(_scores().assign(score=2), item="highlight", reference="standard")
    assert res["status"] == "failed" and "two or more levels" in res["message"]
