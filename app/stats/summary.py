"""The whole analysis of one study, from frames to one JSON-serialisable dict.

`analyze` is what the web page, the CLI, the report and the benchmark all call, so they can
never disagree. The first arm is the reference (normally the standard model); every other arm
is compared with it.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from app.stats.agreement import inter_rater_agreement, intra_rater_agreement
from app.stats.descriptives import arm_descriptives, likert_distribution
from app.stats.frames import clean, primary, validate_preferences, validate_scores
from app.stats.mixed import fit_crossed_lmm
from app.stats.paired import DEFAULT_BOOT, DEFAULT_SEED, friedman_and_pairwise, paired_comparison
from app.stats.preference import blinding_check, preference_test
from app.stats.quality import rater_quality
from app.stats.reviewer import DEFAULT_ALPHA, DEFAULT_PRIMARY, PAGE_POWER_SIMS, reviewer_item

EMPTY_ITEM: dict[str, Any] = {
    "descriptives": [],
    "distribution": [],
    "comparisons": [],
    "multi_arm": None,
    "agreement": None,
    "intra_rater": None,
    "mixed_model": None,
    "reviewer": None,
    "clmm": None,
}


def analyze_item(
    scores: pd.DataFrame,
    arms: Sequence[str],
    levels: Sequence[int],
    prefs: pd.DataFrame | None = None,
    *,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    primary_analysis: str = DEFAULT_PRIMARY,
    alpha: float = DEFAULT_ALPHA,
    power_sims: int = PAGE_POWER_SIMS,
) -> dict[str, Any]:
    """Every score-based statistic for one Likert item.

    `reviewer` holds the analyses with readers and cases random (OR-MRMC, VGC, two-way
    bootstrap CIs, power); `clmm` (R) is left None here and filled by the caller that decides
    whether R may run.
    """
    ref = arms[0]
    return {
        "descriptives": arm_descriptives(scores, arms),
        "distribution": likert_distribution(scores, levels, arms),
        "comparisons": [
            paired_comparison(scores, ref, other, n_boot=n_boot, seed=seed) for other in arms[1:]
        ],
        "multi_arm": (
            friedman_and_pairwise(scores, arms, n_boot=n_boot, seed=seed) if len(arms) > 2 else None
        ),
        "agreement": inter_rater_agreement(scores, arms, levels),
        "intra_rater": intra_rater_agreement(scores, levels, prefs),
        "mixed_model": fit_crossed_lmm(scores, arms),
        "reviewer": reviewer_item(
            scores,
            arms,
            levels,
            n_boot=n_boot,
            seed=seed,
            primary=primary_analysis,
            alpha=alpha,
            power_sims=power_sims,
        ),
        "clmm": None,
    }


def analyze(
    scores: pd.DataFrame,
    prefs: pd.DataFrame,
    *,
    arms: Sequence[str],
    levels: Mapping[str, Sequence[int]],
    guesses: pd.DataFrame | None = None,
    blinding_target: str | None = None,
    n_boot: int = DEFAULT_BOOT,
    seed: int = DEFAULT_SEED,
    primary_analysis: str = DEFAULT_PRIMARY,
    alpha: float = DEFAULT_ALPHA,
    power_sims: int = PAGE_POWER_SIMS,
) -> dict[str, Any]:
    """Analyse a study: per Likert item (keys of `levels`), preferences, blinding, rater quality.

    Items without any score are listed with `n_scores = 0` and empty results rather than
    dropped, so a reader of the output sees that they exist and were not rated, and the keys
    are the same for every study.
    """
    scores = validate_scores(scores) if len(scores) else scores
    prefs = validate_preferences(prefs) if len(prefs) else prefs
    arms = list(arms)
    ref = arms[0] if arms else None
    items: list[dict[str, Any]] = []
    for key, lv in levels.items():
        rows = scores[scores["item"] == key] if len(scores) else scores
        entry: dict[str, Any] = {"key": key, "levels": list(lv), "n_scores": len(primary(rows))}
        entry.update(EMPTY_ITEM)  # same keys whether or not there is anything to analyse
        if entry["n_scores"] and len(arms) >= 2:
            entry.update(
                analyze_item(
                    rows,
                    arms,
                    lv,
                    prefs if len(prefs) else None,
                    n_boot=n_boot,
                    seed=seed,
                    primary_analysis=primary_analysis,
                    alpha=alpha,
                    power_sims=power_sims,
                )
            )
        items.append(entry)
    # Reference vs each arm first, then the remaining pairs (designs with > 2 arms).
    pairs = [(arms[0], other) for other in arms[1:]] + list(itertools.combinations(arms[1:], 2))
    preferences = [preference_test(prefs, a, b) for a, b in pairs] if len(prefs) else []
    blinding = None
    if guesses is not None and len(guesses) and blinding_target is not None:
        blinding = blinding_check(guesses, blinding_target)
    all_levels = sorted({int(v) for lv in levels.values() for v in lv}) or [1, 2, 3, 4, 5]
    quality = rater_quality(scores, prefs if len(prefs) else None, levels=all_levels)
    return clean(  # type: ignore[no-any-return]
        {
            "arms": arms,
            "reference_arm": ref,
            "items": items,
            "preferences": preferences,
            "blinding": blinding,
            "bootstrap": {"n_boot": n_boot, "seed": seed},
            "quality": quality,
        }
    )
