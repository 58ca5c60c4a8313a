"""What the study page shows live, in one small answer the page polls every few seconds:
status (as a person reads it), maps, the generation job, and each rater's progress.

`status_label` fixes a trap: a study stays `generating` after its maps are done (so the
researcher can preview before opening), which the page used to show as "generating" forever.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.models import Study, StudyStatus
from app.services.maps.jobs import ACTIVE, job_json
from app.services.study.schemas import LiveJobOut, LiveRaterOut, StudyLiveOut
from app.services.study.studies import (
    latest_job,
    map_counts,
    rater_progress,
    study_progress,
)


def status_label(status: str, *, maps_ready: bool, job_active: bool, job_failed: bool) -> str:
    if status == StudyStatus.generating.value:
        if job_active:
            return "generating maps"
        return "maps ready" if maps_ready else ("generation failed" if job_failed else "draft")
    if status == StudyStatus.draft.value and job_failed:
        return "draft (generation failed)"
    return status


def study_live(db: Session, study: Study) -> StudyLiveOut:
    have, needed = map_counts(db, study)
    done, total = study_progress(db, study)
    job = latest_job(db, study)
    active = job is not None and job.status in ACTIVE
    ready = needed > 0 and have >= needed
    return StudyLiveOut(
        id=study.id,
        status=study.status,
        status_label=status_label(
            study.status,
            maps_ready=ready,
            job_active=active,
            job_failed=job is not None and job.status == "failed",
        ),
        maps_done=have,
        maps_total=needed,
        maps_ready=ready,
        job=LiveJobOut.model_validate(job_json(job)) if job is not None else None,
        job_active=active,
        ratings_done=done,
        ratings_total=total,
        raters=[LiveRaterOut.model_validate(r.as_json()) for r in rater_progress(db, study)],
    )
