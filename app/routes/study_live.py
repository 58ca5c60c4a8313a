"""`GET /api/v1/studies/{id}/live`: the study page's live status (static/js/study_live.js polls
it), so badges, the job bar and rater progress change without a reload."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from pydantic import BaseModel

from app.auth.deps import DbSession, StaffUser
from app.ids import DbId
from app.services.study.live import study_live
from app.services.study.studies import get_study

api_router = APIRouter(prefix="/studies", tags=["studies"])


class LiveJobOut(BaseModel):
    id: int
    status: str
    done: int
    total: int
    error: str | None
    rate: float | None
    eta_seconds: float | None


class LiveRaterOut(BaseModel):
    username: str
    display_name: str
    done: int
    total: int
    last_activity: dt.datetime | None
    median_seconds: float | None


class StudyLiveOut(BaseModel):
    """`status_label` is what a person should read ("maps ready", "generating maps", …)."""

    id: int
    status: str
    status_label: str
    maps_done: int
    maps_total: int
    maps_ready: bool
    job: LiveJobOut | None
    job_active: bool
    ratings_done: int
    ratings_total: int
    raters: list[LiveRaterOut]


@api_router.get("/{study_id}/live", response_model=StudyLiveOut)
def api_study_live(db: DbSession, _user: StaffUser, study_id: DbId) -> StudyLiveOut:
    live = study_live(db, get_study(db, study_id))
    job = live.job
    return StudyLiveOut(
        **{k: v for k, v in vars(live).items() if k not in ("job", "raters")},
        job=LiveJobOut(**{k: job[k] for k in LiveJobOut.model_fields}) if job else None,
        raters=[LiveRaterOut(**r) for r in live.raters],
    )
