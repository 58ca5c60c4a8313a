"""The staff preview of a trial: the rater's page, built by the rater's own view code.

A researcher checks a study by walking through one rater's trials before opening it. The view
comes from :func:`app.services.reading.trials.view_of`, the builder the rater's trial page uses,
and the viewer's description from :func:`app.services.reading.viewer.viewer_spec`, the one the
rater's viewer loads; its files come through the rater's own slot lookup
(:func:`app.services.reading.viewer.slot_file`, catch trials included), so the preview shows
exactly what the rater will see. Only the URLs differ (staff URLs by trial id, since a preview
has no rater session and saves no answer), and a preview works in every status: researchers
preview a draft before opening it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import Study, Trial
from app.services.reading.trials import view_of
from app.services.reading.viewer import (
    VIEWER_SLOTS,
    SpecUrls,
    ViewerFile,
    ViewerSpec,
    slot_file,
    stored_file,
    viewer_spec,
)
from app.storage import Storage


def _trial_of(db: Session, study: Study, trial_id: int) -> Trial:
    trial = db.get(Trial, trial_id)
    if trial is None or trial.study_id != study.id:
        raise NotFound("No such trial.")
    return trial


def page_url(study_id: int, trial_id: int) -> str:
    return f"/studies/{study_id}/preview/{trial_id}"


def spec_url(study_id: int, trial_id: int) -> str:
    """The staff viewer description of a previewed trial (JSON API)."""
    return f"/api/v1/studies/{study_id}/preview/{trial_id}/viewer"


def files_url(study_id: int, trial_id: int) -> str:
    """Where a previewed trial's viewer files hang: ``…/view/source``, ``…/view/a|b``."""
    return f"{page_url(study_id, trial_id)}/view"


def _neighbours(db: Session, trial: Trial) -> dict[int, int]:
    """Trial id by position for the positions just before and after `trial` (same rater)."""
    rows = db.execute(
        select(Trial.position, Trial.id).where(
            Trial.study_id == trial.study_id,
            Trial.rater_id == trial.rater_id,
            Trial.position.in_([trial.position - 1, trial.position + 1]),
        )
    )
    return {position: tid for position, tid in rows}


def first_trial(db: Session, study: Study) -> Trial | None:
    """The trial a preview starts from: the first rater's first position."""
    return db.scalar(
        select(Trial).where(Trial.study_id == study.id).order_by(Trial.rater_id, Trial.position)
    )


def preview_view(db: Session, study: Study, trial_id: int) -> dict[str, Any]:
    """The rater's view of one trial, with staff URLs and no answer."""
    trial = _trial_of(db, study, trial_id)
    total = (
        db.scalar(
            select(func.count(Trial.id)).where(
                Trial.study_id == study.id, Trial.rater_id == trial.rater_id
            )
        )
        or 0
    )
    neighbours = _neighbours(db, trial)
    previous = neighbours.get(trial.position - 1)
    following = neighbours.get(trial.position + 1)
    files = files_url(study.id, trial.id)
    return view_of(
        study,
        # The page's own key (the viewer keeps a trial's unsaved draft and clock under it): one
        # per previewed trial, so picks made on one preview never reappear on the next.
        token=f"preview-{trial.id}",
        position=trial.position + 1,
        total=total,
        answered=0,
        urls={
            "page_url": page_url(study.id, trial.id),
            "viewer_url": spec_url(study.id, trial.id),
            "image_url": f"/images/{trial.image_id}/display.png",
            "map_a_url": f"{files}/a",
            "map_b_url": f"{files}/b",
            "rating_url": "",
        },
        previous_url=page_url(study.id, previous) if previous is not None else None,
        next_url=page_url(study.id, following) if following is not None else None,
        rating=None,
    )


def preview_spec(db: Session, study: Study, trial_id: int) -> ViewerSpec:
    """The viewer's description of a previewed trial: the rater's, with staff URLs."""
    trial = _trial_of(db, study, trial_id)
    following = _neighbours(db, trial).get(trial.position + 1)
    urls = SpecUrls(
        files=files_url(study.id, trial.id),
        next_spec_url=spec_url(study.id, following) if following is not None else None,
    )
    return viewer_spec(db, study, trial, urls=urls)


def preview_file(
    db: Session, storage: Storage, study: Study, trial_id: int, slot: str
) -> ViewerFile:
    """The file behind a previewed trial's viewer slot (``source``, ``a``, ``b``), whatever the
    study's status; a map not generated yet is "not found"."""
    if slot not in VIEWER_SLOTS:
        raise NotFound("No such file.")
    trial = _trial_of(db, study, trial_id)
    found = slot_file(db, (Trial.id == trial.id,), slot)
    if found is None:
        raise NotFound("This map has not been generated yet.")
    return stored_file(storage, found)
