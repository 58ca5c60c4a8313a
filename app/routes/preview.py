"""The staff preview of a study's trials: the rater's page and viewer, with staff URLs by trial id.

`GET /studies/{id}/preview/{trial_id}` renders the rater's trial template; its viewer loads
`GET /api/v1/studies/{id}/preview/{trial_id}/viewer` (the rater's `ViewerSpec`, built by the
same code) and the files it names, `GET /studies/{id}/preview/{trial_id}/view/{slot}`
(`source`, `a`, `b`: the very files the rater's `/t/{token}/view/{slot}` serves). Staff only;
every study status, drafts included (researchers preview before opening).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.auth.deps import DbSession, StaffUser
from app.ids import DbId
from app.services.reading import preview
from app.services.reading.viewer import ViewerSpec
from app.services.study.studies import get_study
from app.storage import Storage
from app.web import HOTKEYS, etag_response, render

router = APIRouter(tags=["studies"])
api_router = APIRouter(prefix="/studies", tags=["studies"])

# Revalidated on every use: a draft's maps can be regenerated under the same trial-id URL.
FILE_CACHE = "private, no-cache"
NOTICE = "Preview (staff only): this is what the rater sees; answers are not saved."


@router.get("/studies/{study_id}/preview/{trial_id}", include_in_schema=False)
def preview_page(
    request: Request, db: DbSession, _user: StaffUser, study_id: DbId, trial_id: DbId
) -> Response:
    """A trial exactly as its rater will see it (the rater template), answers not saved. The
    viewer's description goes in the page as on the rater's (`viewer_spec`), staff URLs."""
    study = get_study(db, study_id)
    view = preview.preview_view(db, study, trial_id)
    spec = preview.preview_spec(db, study, trial_id).model_dump(mode="json")
    return render(
        request,
        "rater/trial.html",
        {"view": view, "viewer_spec": spec, "hotkeys": HOTKEYS, "notice": NOTICE},
    )


@router.get("/studies/{study_id}/preview/{trial_id}/view/{slot}", include_in_schema=False)
def preview_file(
    request: Request,
    db: DbSession,
    _user: StaffUser,
    study_id: DbId,
    trial_id: DbId,
    slot: str,
) -> Response:
    storage = Storage(request.app.state.settings.data_dir)
    found = preview.preview_file(db, storage, get_study(db, study_id), trial_id, slot)
    return etag_response(
        request, found.path.read_bytes(), media_type=found.media_type, cache=FILE_CACHE
    )


@api_router.get("/{study_id}/preview/{trial_id}/viewer")
def api_preview_viewer(
    db: DbSession, _user: StaffUser, study_id: DbId, trial_id: DbId
) -> ViewerSpec:
    """How the viewer shows a trial of the study as its rater will see it (the rater's
    description, with staff file URLs by trial id); any status, drafts included."""
    return preview.preview_spec(db, get_study(db, study_id), trial_id)
