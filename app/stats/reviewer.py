"""The reviewer-grade layer of an item's analysis, and the pre-registered primary analysis.

`reviewer_item` adds, for one Likert item, the analyses whose conclusions hold for new readers
*and* new cases: OR-MRMC of the mean score difference (`app.stats.mrmc`), VGC curves with
two-way bootstrap intervals (`app.stats.vgc`), two-way bootstrap intervals of the headline
numbers (`app.stats.bootstrap`) and the power of a next study from this one's variance
components (`app.stats.power`). The ordinal mixed model runs in R and is attached by the
service layer (`app.stats.clmm_r` is pure but slow, so the caller decides when to run it).

A study may pre-register one primary analysis and its alpha before it opens (`AnalysisPlan`);
`primary_outcome` then picks that analysis's number out of the results and every other test is
reported as secondary.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from app.stats.bootstrap import headline_intervals
from app.stats.frames import clean
from app.stats.mrmc import mrmc_mean_difference
from app.stats.paired import DEFAULT_BOOT, DEFAULT_SEED
from app.stats.power import ANALYSES as POWER_ANALYSES
from app.stats.power import power_from_study
from app.stats.vgc import vgc_analysis

PRIMARY_ANALYSES: dict[str, str] = {
    "or_mrmc": "OR-MRMC test of the mean score difference (readers and cases random)",
    "clmm": "cumulative link mixed model odds ratio (R ordinal::clmm, readers and cases random)",
    "vgc": "AUC_VGC with a two-way (readers x cases) bootstrap confidence interval",
    "wilcoxon_case_means": "Wilcoxon signed-rank test on per-case mean differences",
    "wilcoxon": "Wilcoxon signed-rank test on rater x case differences (readers fixed)",
    "lmm": "linear mixed model arm effect (REML, Wald test)",
}
DEFAULT_PRIMARY = "or_mrmc"
DEFAULT_ALPHA = 0.05
PAGE_POWER_SIMS = 200


def power_analysis_for(primary: str) -> tuple[str, str | None]:
    """The simulated analysis that stands in for `primary` in a power calculation, and why."""
    if primary in POWER_ANALYSES:
        return primary, None
    return "or_mrmc", (
        "power is simulated for the OR-MRMC test of the mean score difference, which tests the "
        f"same arm effect as the primary analysis ({primary}); that one is too slow to "
        "simulate thousands of times."
    )


def reviewer_item(
    scores: pd.DataFrame,
    arms: Sequence[str],
    levels: Sequence[int],
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    primary: str = DEFAULT_PRIMARY,
    alpha: float = DEFAULT_ALPHA,
    power_sims: int = PAGE_POWER_SIMS,
) -> dict[str, Any]:
    """MRMC, VGC, two-way bootstrap CIs and power for one item (reference = first arm)."""
    arms = list(arms)
    ref = arms[0]
    analysis, note = power_analysis_for(primary)
    power: dict[str, Any] | None = None
    if len(arms) >= 2:
        power = power_from_study(
            scores, ref, arms[1], analysis=analysis, alpha=alpha, n_sim=power_sims, seed=seed
        )
        if note:
            power["note"] = note if not power.get("note") else f"{power['note']} {note}"
    return {
        "mrmc": mrmc_mean_difference(scores, arms),
        "vgc": [
            vgc_analysis(scores, ref, other, levels, n_boot=n_boot, seed=seed) for other in arms[1:]
        ],
        "two_way": headline_intervals(scores, arms, n_boot=n_boot, seed=seed),
        "power": power,
    }


def analysis_plan(raw: Mapping[str, Any] | None) -> dict[str, Any]:
    """A study's stored plan, completed with defaults; `registered` says whether one was stored."""
    raw = dict(raw or {})
    primary = str(raw.get("primary_analysis") or DEFAULT_PRIMARY)
    return {
        "registered": bool(raw.get("primary_analysis")),
        "primary_analysis": primary,
        "label": PRIMARY_ANALYSES.get(primary, primary),
        "alpha": float(raw.get("alpha") or DEFAULT_ALPHA),
        "item": raw.get("item"),
        "registered_at": raw.get("registered_at"),
    }


def _from_comparison(comp: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not comp:
        return None
    return {
        "estimate": comp.get("estimate"),
        "ci_low": comp.get("ci_low"),
        "ci_high": comp.get("ci_high"),
        "p_value": comp.get("p_value"),
    }


def primary_outcome(
    plan: Mapping[str, Any], item: Mapping[str, Any], clmm: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The pre-registered analysis's number for the item (reference vs the second arm).

    Returns estimate, CI, p-value (None where the method has no p), whether it is significant
    at the plan's alpha, and `note` when the number could not be computed (with the reason).
    """
    key = plan["primary_analysis"]
    alpha = plan["alpha"]
    out: dict[str, Any] = {
        "analysis": key,
        "label": plan["label"],
        "alpha": alpha,
        "measure": None,
        "estimate": None,
        "ci_low": None,
        "ci_high": None,
        "p_value": None,
        "significant": None,
        "note": None,
    }
    found: dict[str, Any] | None = None
    reviewer = item.get("reviewer") or {}
    if key == "or_mrmc":
        mrmc = reviewer.get("mrmc") or {}
        out["measure"] = "mean score difference"
        found = _from_comparison((mrmc.get("comparisons") or [None])[0])
        out["note"] = None if found else mrmc.get("note")
    elif key == "vgc":
        vgc = (reviewer.get("vgc") or [None])[0] or {}
        out["measure"] = "AUC_VGC"
        if vgc.get("auc") is not None:
            found = {
                "estimate": vgc["auc"],
                "ci_low": vgc.get("ci_low"),
                "ci_high": vgc.get("ci_high"),
                "p_value": None,
            }
            if found["ci_low"] is not None:
                out["significant"] = not (found["ci_low"] <= 0.5 <= found["ci_high"])
        out["note"] = None if found else vgc.get("note")
    elif key in ("wilcoxon", "wilcoxon_case_means"):
        comp = (item.get("comparisons") or [None])[0] or {}
        level = comp.get("rater_case" if key == "wilcoxon" else "case_means") or {}
        out["measure"] = "mean score difference"
        if level:
            found = {
                "estimate": level.get("mean_diff"),
                "ci_low": level.get("mean_diff_ci_low"),
                "ci_high": level.get("mean_diff_ci_high"),
                "p_value": (level.get("wilcoxon") or {}).get("p_value"),
            }
        out["note"] = None if found else "no paired comparison was possible."
    elif key == "lmm":
        mm = item.get("mixed_model") or {}
        fixed = [f for f in mm.get("fixed") or [] if f["term"] != "(Intercept)"]
        out["measure"] = "arm effect (score points)"
        found = _from_comparison(fixed[0]) if fixed else None
        out["note"] = None if found else mm.get("note")
    elif key == "clmm":
        out["measure"] = "odds ratio"
        effects = ((clmm or {}).get("primary") or {}).get("arm_effects") or []
        if effects:
            e = effects[0]
            found = {
                "estimate": e.get("odds_ratio"),
                "ci_low": e.get("ci_low"),
                "ci_high": e.get("ci_high"),
                "p_value": e.get("p_value"),
            }
        else:
            out["note"] = (clmm or {}).get("message") or "the ordinal model was not fitted."
    else:
        out["note"] = f"unknown primary analysis {key!r}."
    if found:
        out.update(found)
        if found.get("p_value") is not None:
            out["significant"] = bool(found["p_value"] < alpha)
    return clean(out)  # type: ignore[no-any-return]
