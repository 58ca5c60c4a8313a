"""Rater quality flags for the study page (the analysis carries the full table)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.services.results.formats import stats_frames
from app.services.results.snapshot import load_snapshot
from app.services.study.spec import DEFAULT_SCALE
from app.stats.quality import rater_quality


def study_quality(db: Session, study_id: int) -> dict[str, Any]:
    """`rater_quality` on the study's ratings so far; `by_rater` maps username -> flags."""
    snap = load_snapshot(db, study_id)
    if snap.rated.empty:
        return {"by_rater": {}, "flagged": [], "note": "no ratings yet."}
    scores, prefs = stats_frames(snap)
    scales = [int(i["scale"]) for i in snap.likert_items] or [DEFAULT_SCALE]
    result = rater_quality(scores, prefs, levels=list(range(1, max(scales) + 1)))
    result["by_rater"] = {r["rater"]: r["flags"] for r in result["raters"]}
    return result
