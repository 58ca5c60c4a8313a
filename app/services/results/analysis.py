"""The study analysis: snapshot -> statistics (app.stats) + design summary + warnings.

Researcher-only: the result names arms by their unblinded labels.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.services.results.formats import stats_frames
from app.services.results.methods import methods_paragraph
from app.services.results.snapshot import StudySnapshot, load_snapshot
from app.stats.paired import DEFAULT_BOOT, DEFAULT_SEED
from app.stats.summary import analyze

EMPTY_MESSAGE = "No ratings yet: there is nothing to analyse."


def _progress(snap: StudySnapshot) -> list[dict[str, Any]]:
    trials = snap.trials
    rows = []
    for rater in snap.raters:
        mine = trials[trials["rater"] == rater]
        rows.append(
            {
                "rater": rater,
                "done": int(mine["rated"].sum()),
                "total": len(mine),
                "repeats_done": int((mine["rated"] & mine["is_repeat"]).sum()),
            }
        )
    return rows


def _warnings(snap: StudySnapshot, progress: list[dict[str, Any]]) -> list[str]:
    """What a reader of the numbers must know before trusting them."""
    out: list[str] = []
    if snap.rated.empty:
        out.append(EMPTY_MESSAGE)
    for row in progress:
        if row["total"] and row["done"] < row["total"]:
            out.append(
                f"rater {row['rater']} completed {row['done']} of {row['total']} trials; "
                "the analysis uses the trials that were rated."
            )
    if snap.study["status"] not in ("closed",) and not snap.rated.empty:
        out.append(f"the study is {snap.study['status']}: results are provisional.")
    if len(snap.arms) < 2:
        out.append("the study has fewer than two arms: no comparison is possible.")
    return out


def design_summary(snap: StudySnapshot) -> dict[str, Any]:
    """The design facts a methods section needs (unblinded)."""
    return {
        "id": snap.study["id"],
        "name": snap.study["name"],
        "status": snap.study["status"],
        "seed": snap.study["seed"],
        "repeat_fraction": snap.study["repeat_fraction"],
        "saliency": snap.study["saliency"],
        "n_raters": len(snap.raters),
        "n_cases": len(snap.cases),
        "n_trials": len(snap.trials),
        "n_rated": int(snap.trials["rated"].sum()),
        "items": snap.items,
        "arms": [
            {
                "label": a.label,
                "position": a.position,
                "checkpoint": a.checkpoint_name,
                "checkpoint_sha256": a.checkpoint_sha256,
                "bn_route": a.bn_route,
                "method": a.method,
            }
            for a in snap.arms
        ],
    }


def analyze_snapshot(
    snap: StudySnapshot, *, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED
) -> dict[str, Any]:
    """Full analysis of an already-loaded snapshot (the benchmark times this)."""
    scores, prefs = stats_frames(snap)
    levels = {i["key"]: list(range(1, int(i.get("scale", 5)) + 1)) for i in snap.likert_items}
    result = analyze(scores, prefs, arms=snap.arm_labels, levels=levels, n_boot=n_boot, seed=seed)
    progress = _progress(snap)
    result["study"] = design_summary(snap)
    result["progress"] = progress
    result["warnings"] = _warnings(snap, progress)
    result["empty"] = bool(snap.rated.empty)
    result["message"] = EMPTY_MESSAGE if result["empty"] else None
    result["methods"] = methods_paragraph(result)
    return result


def analyze_study(
    db: Session, study_id: int, *, n_boot: int = DEFAULT_BOOT, seed: int = DEFAULT_SEED
) -> dict[str, Any]:
    """Analyse study `study_id` on the ratings that exist now (JSON-serialisable, stable keys)."""
    return analyze_snapshot(load_snapshot(db, study_id), n_boot=n_boot, seed=seed)
