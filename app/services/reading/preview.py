"""The staff preview of a trial: the rater's page, built by the rater's own view code.

A researcher checks a study by walking through one rater's trials before opening it. The view
comes from :func:`app.services.reading.trials.view_of`, the builder the rater's trial page uses,
so the preview shows exactly what the rater will see; only the URLs differ (staff URLs by trial
id, since a preview has no rater session and saves no answer).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import SaliencyMap, Study, Trial
from app.services.reading.trials import view_of
from app.services.study.spec import saliency_settings
from app.storage import Storage


def _trial_of(db: Session, study: Study, trial_id: int) -> Trial:
    trial = db.get(Trial, trial_id)
    if trial is None or trial.study_id != study.id:
        raise NotFound("No such trial.")
    return trial


def first_trial(db: Session, study: Study) -> Trial | None:
    """The trial a preview starts from: the first rater's first position."""
    return db.scalar(
        select(Trial).where(Trial.study_id == study.id).order_by(Trial.rater_id, Trial.position)
    )


def preview_view(db: Session, study: Study, trial_id: int) -> dict[str, Any]:
    """The rater's view of one trial, with staff URLs and no answer."""
    trial = _trial_of(db, study, trial_id)
    same_rater = (Trial.study_id == study.id, Trial.rater_id == trial.rater_id)
    total = db.scalar(select(func.count(Trial.id)).where(*same_rater)) or 0
    rows = db.execute(
        select(Trial.position, Trial.id).where(
            *same_rater, Trial.position.in_([trial.position - 1, trial.position + 1])
        )
    )
    neighbours = {position: tid for position, tid in rows}
    base = f"/studies/{study.id}/preview"
    previous = neighbours.get(trial.position - 1)
    following = neighbours.get(trial.position + 1)
    return view_of(
        study,
        token="preview",
        position=trial.position + 1,
        total=total,
        answered=0,
        urls={
            "page_url": f"{base}/{trial.id}",
            "image_url": f"/images/{trial.image_id}/display.png",
            "map_a_url": f"{base}/{trial.id}/a.png",
            "map_b_url": f"{base}/{trial.id}/b.png",
            "rating_url": "",
        },
        previous_url=f"{base}/{previous}" if previous is not None else None,
        next_url=f"{base}/{following}" if following is not None else None,
        rating=None,
    )


def preview_map(db: Session, storage: Storage, study: Study, trial_id: int, slot: str) -> Path:
    """The rendered overlay behind a preview's map slot ("a" = left arm, "b" = right arm)."""
    if slot not in ("a", "b"):
        raise NotFound("No such map.")
    trial = db.get(Trial, trial_id)
    if trial is None or trial.study_id != study.id:
        raise NotFound("No such map.")
    arm_id = trial.left_arm_id if slot == "a" else trial.right_arm_id
    rel = db.scalar(
        select(SaliencyMap.overlay_path).where(
            SaliencyMap.arm_id == arm_id,
            SaliencyMap.image_id == trial.image_id,
            SaliencyMap.target == saliency_settings(study.saliency).target,
        )
    )
    if rel is None:
        raise NotFound("This map has not been generated yet.")
    return storage.path(rel)
