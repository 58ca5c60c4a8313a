"""The researcher's trial browser: `/studies/{id}/trials` and `GET /api/v1/studies/{id}/trials`.

Unblinded (arm labels, answers, comments): staff only. Each row links to the trial's preview.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from app.auth.deps import DbSession, StaffUser
from app.errors import Invalid
from app.ids import DbId
from app.services.reading.browse import FLAGS, TrialFilter, browse_trials
from app.services.reading.schemas import TrialPageOut
from app.web import render

router = APIRouter(tags=["studies"])
api_router = APIRouter(prefix="/studies", tags=["studies"])


def _int_or_none(value: str, what: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isdigit() or len(value) > 9:
        raise Invalid(f"{what} is a number.")
    return int(value)


def _filter(
    rater: str = "", case: str = "", arm: str = "", item: str = "", flag: str = ""
) -> TrialFilter:
    """The query filters, parsed once for the page and the JSON (a FastAPI dependency)."""
    return TrialFilter(
        rater=rater.strip()[:64],
        case=_int_or_none(case, "The case"),
        arm=_int_or_none(arm, "The arm"),
        item=item.strip()[:64],
        flag=flag.strip()[:32],
    )


Filter = Annotated[TrialFilter, Depends(_filter)]
Page = Annotated[int, Query(ge=1, le=1_000_000)]


@router.get("/studies/{study_id}/trials", include_in_schema=False)
def trials_page(
    request: Request,
    db: DbSession,
    _user: StaffUser,
    study_id: DbId,
    flt: Filter,
    page: Page = 1,
) -> Response:
    result = browse_trials(db, study_id, flt, page)
    return render(
        request,
        "trial_browser.html",
        {"study_id": study_id, "r": result, "flt": flt, "flags": FLAGS},
    )


@api_router.get("/{study_id}/trials", response_model=TrialPageOut)
def api_trials(
    db: DbSession,
    _user: StaffUser,
    study_id: DbId,
    flt: Filter,
    page: Page = 1,
) -> TrialPageOut:
    """Trials with their answers, 100 a page. Filters: `rater` (username), `case` (image id),
    `arm` (arm id, either side), `item` (Likert key), `flag` (rated, unrated, repeat,
    commented, no_preference)."""
    return TrialPageOut.of(browse_trials(db, study_id, flt, page))
