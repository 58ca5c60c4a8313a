"""Power of the next study from a finished or pilot study (researcher-only, unblinded arms).

Reads the study's scores once (the same snapshot as the analysis) and hands them to
`app.stats.power`, which estimates the variance components and simulates the primary analysis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from app.errors import Invalid
from app.services.results.formats import stats_frames
from app.services.results.snapshot import load_snapshot
from app.stats.power import DEFAULT_CASES, DEFAULT_READERS, DEFAULT_SEED, DEFAULT_SIMS
from app.stats.power import power_from_study as simulate_from_scores
from app.stats.reviewer import analysis_plan, power_analysis_for


def power_for_study(
    db: Session,
    study_id: int,
    *,
    item: str | None = None,
    arm: str | None = None,
    effect: float | None = None,
    readers: Sequence[int] = DEFAULT_READERS,
    cases: Sequence[int] = DEFAULT_CASES,
    alpha: float | None = None,
    n_sim: int = DEFAULT_SIMS,
    seed: int = DEFAULT_SEED,
    analysis: str | None = None,
) -> dict[str, Any]:
    """Simulated power over readers x cases from study `study_id`'s variance components.

    Defaults come from the study: its first Likert item, the reference arm against the second
    arm, its pre-registered primary analysis and alpha, and the observed effect.
    """
    snap = load_snapshot(db, study_id)
    plan = analysis_plan(snap.study.get("analysis_plan"))
    likert = [i["key"] for i in snap.likert_items]
    key = item or plan.get("item") or (likert[0] if likert else None)
    if key not in likert:
        raise Invalid(f"The study has no Likert item {key!r} (items: {', '.join(likert)}).")
    arms = snap.arm_labels
    if len(arms) < 2:
        raise Invalid("The study has fewer than two arms: there is no effect to power.")
    other = arm or arms[1]
    if other not in arms[1:]:
        raise Invalid(f"No arm {other!r} to compare with {arms[0]!r} (arms: {', '.join(arms)}).")
    chosen, note = power_analysis_for(analysis or plan["primary_analysis"])
    scores, _prefs = stats_frames(snap)
    scores = scores[scores["item"] == key] if len(scores) else scores
    result = simulate_from_scores(
        scores,
        arms[0],
        other,
        effect=effect,
        readers=readers,
        cases=cases,
        alpha=plan["alpha"] if alpha is None else alpha,
        n_sim=n_sim,
        seed=seed,
        analysis=chosen,
    )
    if note:
        result["note"] = note if not result.get("note") else f"{result['note']} {note}"
    result["study"] = {"id": snap.study["id"], "name": snap.study["name"], "item": key}
    return result
