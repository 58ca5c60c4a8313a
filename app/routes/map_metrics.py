"""A study's map metrics with statistics (issue 17): the study page's panel and its JSON.

`GET /api/v1/studies/{id}/map-metrics` is the JSON; `GET /studies/{id}/map-metrics` the panel
as a page of its own, which static/js/map_metrics.js loads into the study page after the page
itself has rendered (the statistics read every stored map, so the study page never waits for
them), and which a browser without scripts opens through the panel's link.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.auth.deps import DbSession, StaffUser
from app.ids import DbId
from app.services.maps.metrics import map_metrics_summary
from app.services.maps.schemas import MapMetricsOut
from app.services.study.studies import get_study
from app.web import render

router = APIRouter(tags=["studies"])
api_router = APIRouter(prefix="/studies", tags=["studies"])


@router.get("/studies/{study_id}/map-metrics", include_in_schema=False)
def map_metrics_page(request: Request, db: DbSession, _user: StaffUser, study_id: DbId) -> Response:
    study = get_study(db, study_id)
    summary = map_metrics_summary(db, request.app.state.settings, study)
    return render(request, "studies/map_metrics.html", {"study": study, "map_metrics": summary})


@api_router.get("/{study_id}/map-metrics", response_model=MapMetricsOut)
def api_map_metrics(
    request: Request, db: DbSession, _user: StaffUser, study_id: DbId
) -> dict[str, Any]:
    """Per metric and arm: mean with case-bootstrap CI; paired differences with CI and Wilcoxon
    p; shuffled-mask null baselines; degenerate maps counted and excluded (`notes` say why a
    number is missing)."""
    return map_metrics_summary(db, request.app.state.settings, get_study(db, study_id))
