"""Feedback after a practice answer (issue 15): shown on the next page, never in the study.

The reference is the researcher's text for the case (`protocol.practice_feedback`) when there
is one, else the case's ground-truth findings. Practice answers are never analysed; the
feedback only teaches the rater the task and the tool.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Image, Rating, Study, Trial


def practice_feedback(db: Session, study: Study, trial: Trial) -> str | None:
    """Feedback on the caller's practice trial just before `trial`, if it was answered."""
    if trial.position == 0:
        return None
    row = db.execute(
        select(Trial.protocol, Trial.image_id, Rating.id)
        .outerjoin(Rating, Rating.trial_id == Trial.id)
        .where(
            Trial.study_id == trial.study_id,
            Trial.rater_id == trial.rater_id,
            Trial.position == trial.position - 1,
        )
    ).first()
    if row is None or (row[0] or {}).get("phase") != "practice" or row[2] is None:
        return None
    reference = dict((study.protocol or {}).get("practice_feedback") or {}).get(str(row[1]))
    if not reference:
        image = db.get(Image, row[1])
        positive = [k for k, v in dict(image.labels or {}).items() if v] if image else []
        reference = (
            "the finding in that case: " + ", ".join(positive)
            if positive
            else "that case has no labelled finding"
        )
    return f"Practice feedback on the previous case — reference: {reference}."
