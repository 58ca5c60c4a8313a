"""Study actions beyond the straight lifecycle (app/services/study/rounds.py): reopen a closed
study, add raters, clone or start the next round, delete a draft. Pages and `/api/v1/studies`.

Every page form here is destructive or hard to take back, so the study page asks before it
sends one (static/js/confirm.js); the server checks the state again either way.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from app.auth.deps import Csrf, DbSession, StaffUser
from app.ids import DbId
from app.services.study import rounds
from app.services.study.studies import get_study
from app.web import delete_files_later

router = APIRouter(tags=["studies"])
api_router = APIRouter(prefix="/studies", tags=["studies"])


class StudyRef(BaseModel):
    """The study an action produced or changed."""

    id: int
    name: str
    status: str


class RatersAdd(BaseModel):
    raters: list[str] = Field(min_length=1, max_length=500)


class RatersAdded(BaseModel):
    """The study after the new raters got their trials."""

    id: int
    status: str
    raters: list[str]
    trials_added: int


class CloneRequest(BaseModel):
    next_round: bool = False


# --- pages --------------------------------------------------------------------------------------
@router.post("/studies/{study_id}/reopen", dependencies=[Csrf], include_in_schema=False)
def reopen_page(db: DbSession, user: StaffUser, study_id: DbId) -> Response:
    rounds.reopen_study(db, get_study(db, study_id), user)
    return RedirectResponse(f"/studies/{study_id}?done=reopened", status_code=303)


@router.post("/studies/{study_id}/raters", dependencies=[Csrf], include_in_schema=False)
def add_raters_page(
    db: DbSession,
    user: StaffUser,
    study_id: DbId,
    raters: Annotated[str, Form(max_length=20_000)],
) -> Response:
    """`raters`: usernames separated by commas, spaces or new lines."""
    names = [n for n in raters.replace(",", " ").split() if n]
    rounds.add_raters(db, get_study(db, study_id), names, user)
    return RedirectResponse(f"/studies/{study_id}?done=raters", status_code=303)


@router.post("/studies/{study_id}/clone", dependencies=[Csrf], include_in_schema=False)
def clone_page(
    db: DbSession,
    user: StaffUser,
    study_id: DbId,
    next_round: Annotated[str, Form(max_length=5)] = "",
) -> Response:
    clone = rounds.clone_study(db, get_study(db, study_id), user, next_round=next_round == "1")
    return RedirectResponse(f"/studies/{clone.id}?done=cloned", status_code=303)


@router.post("/studies/{study_id}/delete", dependencies=[Csrf], include_in_schema=False)
def delete_page(
    request: Request,
    db: DbSession,
    user: StaffUser,
    study_id: DbId,
    tasks: BackgroundTasks,
) -> Response:
    files = rounds.delete_draft(db, get_study(db, study_id), user)
    delete_files_later(request, tasks, files)
    return RedirectResponse("/studies?deleted=1", status_code=303)


# --- API ----------------------------------------------------------------------------------------
@api_router.post("/{study_id}/reopen", dependencies=[Csrf], response_model=StudyRef)
def api_reopen(db: DbSession, user: StaffUser, study_id: DbId) -> StudyRef:
    """Closed → open again (409 unless closed, or when maps are missing)."""
    study = rounds.reopen_study(db, get_study(db, study_id), user)
    return StudyRef(id=study.id, name=study.name, status=study.status)


@api_router.post("/{study_id}/raters", dependencies=[Csrf], response_model=RatersAdded)
def api_add_raters(db: DbSession, user: StaffUser, study_id: DbId, body: RatersAdd) -> RatersAdded:
    """New raters get trials made by the study's design rules; existing trials stay."""
    study = get_study(db, study_id)
    added = rounds.add_raters(db, study, body.raters, user)
    names = sorted(u.username for u in rounds.raters_of(db, study))
    return RatersAdded(id=study.id, status=study.status, raters=names, trials_added=added)


@api_router.post("/{study_id}/clone", dependencies=[Csrf], status_code=201, response_model=StudyRef)
def api_clone(db: DbSession, user: StaffUser, study_id: DbId, body: CloneRequest) -> StudyRef:
    """A new draft with this design; `next_round` also draws a new seed and names it round N."""
    clone = rounds.clone_study(db, get_study(db, study_id), user, next_round=body.next_round)
    return StudyRef(id=clone.id, name=clone.name, status=clone.status)


@api_router.delete("/{study_id}", dependencies=[Csrf], status_code=204, response_class=Response)
def api_delete(
    request: Request, db: DbSession, user: StaffUser, study_id: DbId, tasks: BackgroundTasks
) -> Response:
    """Drafts only (409 otherwise); their maps go too."""
    files = rounds.delete_draft(db, get_study(db, study_id), user)
    delete_files_later(request, tasks, files)
    return Response(status_code=204)
