"""The two questions every part of the map pipeline asks: which maps exist, and which job is live.

Maps are keyed by arm × image × target: enqueueing counts what is missing, a task skips what a
previous run stored, storing skips what a concurrent worker stored meanwhile, and the study page
counts progress. They all ask `stored_maps` (one map: `find_map`), so "a map exists" means the
same thing everywhere.
A study has at most one live (queued or running) generation job; enqueueing returns it instead
of starting a second, and the study page shows it: both ask `active_job`.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Job, JobStatus, SaliencyMap

ACTIVE = (JobStatus.queued.value, JobStatus.running.value)


def stored_maps(
    db: Session, *, arm_ids: Iterable[int], target: str, image_ids: Iterable[int] | None = None
) -> set[tuple[int, int]]:
    """(arm id, image id) of the maps stored for `target`, optionally only for `image_ids`."""
    arms = list(arm_ids)
    if not arms:
        return set()
    stmt = select(SaliencyMap.arm_id, SaliencyMap.image_id).where(
        SaliencyMap.arm_id.in_(arms), SaliencyMap.target == target
    )
    if image_ids is not None:
        images = list(image_ids)
        if not images:
            return set()
        stmt = stmt.where(SaliencyMap.image_id.in_(images))
    return {(int(arm_id), int(image_id)) for arm_id, image_id in db.execute(stmt)}


def find_map(db: Session, *, arm_id: int, image_id: int, target: str) -> SaliencyMap | None:
    """The stored map of one arm × image × target (None until generated)."""
    return db.scalar(
        select(SaliencyMap)
        .where(
            SaliencyMap.arm_id == arm_id,
            SaliencyMap.image_id == image_id,
            SaliencyMap.target == target,
        )
        .order_by(SaliencyMap.id)
        .limit(1)
    )


def active_job(db: Session, study_id: int) -> Job | None:
    """The study's queued or running job (the newest, should there ever be two)."""
    return db.scalar(
        select(Job)
        .where(Job.study_id == study_id, Job.status.in_(ACTIVE))
        .order_by(Job.id.desc())
        .limit(1)
    )
