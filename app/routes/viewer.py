"""The reading-room viewer's data: a trial's image at full depth, its two map fields, and the
description the viewer draws them with (blinded like every rater route: token + slot only).

`GET /t/{token}/view/{slot}` serves `source` (the image in real units as `.npy`, or the 8-bit
display PNG when it has no deeper source), `a` and `b` (the map fields: `.npy`, one fixed
length and header for every map). ETags are bound to the URL (token + slot) and the bytes,
never to an arm.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.auth.deps import DbSession, RaterUser
from app.services.reading import viewer
from app.services.reading.viewer import ViewerSpec
from app.storage import Storage
from app.web import etag_response

router = APIRouter(tags=["rater pages"])
api_router = APIRouter(tags=["trials"])

FILE_CACHE = "private, max-age=31536000, immutable"


@router.get("/t/{token}/view/{slot}", include_in_schema=False)
def viewer_file(
    request: Request, token: str, slot: str, db: DbSession, user: RaterUser
) -> Response:
    storage = Storage(request.app.state.settings.data_dir)
    found = viewer.viewer_file(db, storage, user, token, slot)
    return etag_response(
        request,
        found.path.read_bytes(),
        media_type=found.media_type,
        cache=FILE_CACHE,
        bound_to=f"{token}\0view\0{slot}\0",
    )


@api_router.get("/trials/{token}/viewer")
def api_trial_viewer(token: str, db: DbSession, user: RaterUser) -> ViewerSpec:
    """How the viewer shows one of the caller's trials: image URL, units, default window and
    presets (HU for CT), map field URLs, colormap, opacity, the finding the maps explain."""
    return viewer.trial_viewer(db, user, token)
