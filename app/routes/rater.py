"""Rater-facing pages, token-addressed images and the trial JSON API (blinded by design).

Every URL here carries a study id (the rater's own) or an opaque trial token, never an arm,
checkpoint, method, map or image id. Another rater's token is 404, exactly like a token that
does not exist.

`GET /api/v1/trials/next` answers 200 with `{"done": true, ...}` when the rater has finished
(not 204), so clients always get a JSON body to read progress from.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from app.auth.deps import Csrf, DbSession, RaterUser
from app.ids import BodyInt, DbId
from app.models import User
from app.services.reading import trials, viewer
from app.services.reading.rating import RatingSubmission, submit_rating
from app.services.reading.schemas import DoneViewOut, TrialViewOut
from app.storage import Storage
from app.web import HOTKEYS, etag_response, render

router = APIRouter(tags=["rater pages"])
api_router = APIRouter(tags=["trials"])

IMAGE_CACHE = "private, max-age=31536000, immutable"
NOTICES = {
    "no-back": "This study does not allow going back to answered trials.",
    "in-order": "Trials are answered in order; here is your current one.",
}


# ---------------------------------------------------------------------------- pages
@router.get("/rate", response_class=HTMLResponse, include_in_schema=False)
def rater_home(request: Request, db: DbSession, user: RaterUser) -> HTMLResponse:
    return render(request, "rater/home.html", {"cards": trials.rater_studies(db, user)})


@router.get("/rate/{study_id}", include_in_schema=False)
def continue_study(study_id: DbId, db: DbSession, user: RaterUser) -> RedirectResponse:
    study = trials.rater_study(db, user, study_id)
    prog = trials.progress(db, study.id, user.id)
    if prog.resume_token is None:
        return RedirectResponse(f"/rate/{study.id}/done", status_code=303)
    trials.require_open(study)
    return RedirectResponse(f"/t/{prog.resume_token}", status_code=303)


@router.get("/rate/{study_id}/done", response_class=HTMLResponse, include_in_schema=False)
def study_done(request: Request, study_id: DbId, db: DbSession, user: RaterUser) -> Response:
    study = trials.rater_study(db, user, study_id)
    prog = trials.progress(db, study.id, user.id)
    if not prog.done and study.status == "open":
        return RedirectResponse(f"/t/{prog.resume_token}", status_code=303)
    return render(request, "rater/done.html", {"study": study, "progress": prog})


@router.get("/t/{token}", response_class=HTMLResponse, include_in_schema=False)
def trial_page(
    request: Request,
    token: str,
    db: DbSession,
    user: RaterUser,
    notice: Annotated[str | None, Query(max_length=16)] = None,
) -> Response:
    ctx = trials.trial_context(db, user, token)
    trials.require_open(ctx.study)
    if ctx.blocked_reason() is not None:
        code = "no-back" if ctx.rating is not None else "in-order"
        target = ctx.progress.resume_token
        url = f"/t/{target}?notice={code}" if target else f"/rate/{ctx.study.id}/done"
        return RedirectResponse(url, status_code=303)
    trials.mark_shown(ctx)
    view = trials.trial_view(db, ctx)
    # The viewer's description goes in the page (what `/api/v1/trials/{token}/viewer` answers),
    # so the browser fetches the image and both maps while it parses, without a round trip.
    spec = viewer.viewer_spec(db, ctx.study, ctx.trial, token).model_dump(mode="json")
    return render(
        request,
        "rater/trial.html",
        {
            "view": view,
            "viewer_spec": spec,
            "hotkeys": HOTKEYS,
            "notice": NOTICES.get(notice or ""),
        },
    )


def _image_response(request: Request, token: str, slot: str, db: DbSession, user: User) -> Response:
    storage = Storage(request.app.state.settings.data_dir)
    path = trials.trial_file(db, storage, user, token, slot)
    return etag_response(
        request,
        path.read_bytes(),
        media_type="image/png",
        cache=IMAGE_CACHE,
        bound_to=f"{token}\0{slot}\0",
    )


# The case's display PNG (the localise item draws on it). The maps have no PNG route here:
# the viewer fetches them as fixed-size fields from `/t/{token}/view/a|b` (app.routes.viewer),
# because per-arm rendered PNGs differ in byte size by arm (a blinding side channel).
@router.get("/t/{token}/image.png", include_in_schema=False)
def trial_image(request: Request, token: str, db: DbSession, user: RaterUser) -> Response:
    return _image_response(request, token, "image", db, user)


# ---------------------------------------------------------------------------- JSON API
class SidePair(BaseModel):
    model_config = ConfigDict(extra="forbid")

    left: BodyInt | None = None
    right: BodyInt | None = None


class FlagIn(BaseModel):
    """Flag a case: it is skipped, left out of the statistics and listed for the researcher."""

    model_config = ConfigDict(extra="forbid")

    reason: Literal["unreadable", "wrong_label", "other"]
    note: str | None = Field(None, max_length=500)


class RatingIn(BaseModel):
    """A rating as the rater saw the pair: `left` is Map A, `right` is Map B."""

    model_config = ConfigDict(extra="forbid")

    left_score: BodyInt | None = Field(None, description="Map A's score on the first Likert item.")
    right_score: BodyInt | None = Field(None, description="Map B's score on the first Likert item.")
    preference: Literal["left", "right", "none"] | None = None
    comment: str | None = Field(None, max_length=2000)
    active_ms: BodyInt = Field(
        ge=0, description="Active time on the trial; idle and hidden excluded."
    )
    total_ms: BodyInt | None = Field(
        None, ge=0, description="Wall time on the trial; active_ms above it is clamped to it."
    )
    request_id: str | None = Field(
        None, min_length=8, max_length=64, description="Client uuid: retries replay, not repeat."
    )
    scores: dict[str, SidePair] | None = Field(
        None, description='All Likert items: {"item key": {"left": n, "right": n}}.'
    )
    answers: dict[str, Any] | None = Field(
        None,
        description="Protocol items by key: confidence 1-5, blinding guess left/right/none, "
        'localise region {"shape": "box"|"ellipse"|"polygon", ...} in 0..1 image coordinates.',
    )
    flag: FlagIn | None = Field(None, description="Flag the case and skip it (no other answer).")
    practice: StrictBool | None = Field(
        None, description="What the page said the trial is; a mismatch is refused (409)."
    )


class RatingOut(BaseModel):
    saved: bool
    replayed: bool
    revision: int
    answered: int
    total: int
    done: bool
    next_url: str
    active_ms: int
    total_ms: int


@api_router.get(
    "/trials/next", response_model=TrialViewOut | DoneViewOut, response_model_exclude_unset=True
)
def api_next_trial(db: DbSession, user: RaterUser, study_id: DbId | None = None) -> dict[str, Any]:
    """The caller's current trial (in the given or first unfinished open study), or
    `{"done": true}` with the progress when every trial is answered."""
    study, prog = trials.next_trial(db, user, study_id)
    if prog.resume_token is None:
        return trials.done_view(study, prog)
    return trials.trial_view(db, trials.open_trial(db, user, prog.resume_token, known=prog))


@api_router.get("/trials/{token}", response_model=TrialViewOut, response_model_exclude_unset=True)
def api_trial(token: str, db: DbSession, user: RaterUser) -> dict[str, Any]:
    """One of the caller's trials (409 when it is not theirs to open now, 404 if not theirs)."""
    return trials.trial_view(db, trials.open_trial(db, user, token))


@api_router.post("/trials/{token}/rating", dependencies=[Csrf])
def api_rate(token: str, body: RatingIn, db: DbSession, user: RaterUser) -> RatingOut:
    """Save the answer; committed before this returns. Same `request_id` again: no new row."""
    saved = submit_rating(
        db,
        user,
        token,
        RatingSubmission(
            active_ms=body.active_ms,
            left_score=body.left_score,
            right_score=body.right_score,
            preference=body.preference,
            comment=body.comment,
            total_ms=body.total_ms,
            request_id=body.request_id,
            scores={k: v.model_dump() for k, v in (body.scores or {}).items()},
            answers=dict(body.answers or {}),
            flag=body.flag.model_dump() if body.flag is not None else None,
            practice=body.practice,
        ),
    )
    return RatingOut(
        saved=True,
        replayed=saved.replayed,
        revision=saved.revision,
        answered=saved.progress.answered,
        total=saved.progress.total,
        done=saved.progress.done,
        next_url=saved.next_url,
        active_ms=saved.active_ms,
        total_ms=saved.total_ms,
    )
