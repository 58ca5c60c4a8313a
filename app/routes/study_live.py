"""`GET /api/v1/studies/{id}/live`: the study page's live status (static/js/study_live.js polls
it), so badges, the job bar and rater progress change without a reload."""

from __future__ import annotations

from fastapi import APIRouter

from app.auth.deps import DbSession, StaffUser
from app.ids import DbId
from app.services.study.live import study_live
from app.services.study.schemas import StudyLiveOut
from app.services.study.studies import get_study

api_router = APIRouter(prefix="/studies", tags=["studies"])


@api_router.get("/{study_id}/live", response_model=StudyLiveOut)
def api_study_live(db: DbSession, _user: StaffUser, study_id: DbId) -> StudyLiveOut:
    return study_live(db, get_study(db, study_id))
