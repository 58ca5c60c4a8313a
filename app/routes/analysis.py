"""Analysis and export: researcher/admin only, the one place arms are unblinded.

Pages: the analysis page, the standalone HTML report, figure downloads (PNG/SVG).
API (under /api/v1): `GET /studies/{id}/export?format=...`, `GET /studies/{id}/analysis`.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response

from app.auth.deps import DbSession, StaffUser
from app.ids import DbId
from app.services.results import analysis as analysis_service
from app.services.results import export as export_service
from app.services.results import report as report_service
from app.services.results.schemas import AnalysisOut, DesignExport
from app.web import render

router = APIRouter(tags=["analysis"])
api_router = APIRouter(prefix="/studies", tags=["analysis"])

# Unblinded data: never cached by browsers or proxies.
_PRIVATE = {"Cache-Control": "no-store"}
ExportFormat = Literal["csv", "wide", "json", "mrmc", "r"]


def _attachment(filename: str) -> dict[str, str]:
    return {**_PRIVATE, "Content-Disposition": f'attachment; filename="{filename}"'}


@router.get("/studies/{study_id}/analysis", include_in_schema=False)
def analysis_page(request: Request, db: DbSession, _user: StaffUser, study_id: DbId) -> Response:
    context = report_service.page_context(db, study_id, request.app.state.settings.data_dir)
    return render(request, "analysis.html", context, headers=_PRIVATE)


@router.get("/studies/{study_id}/report.html", include_in_schema=False)
def report_download(
    request: Request, db: DbSession, _user: StaffUser, study_id: DbId
) -> HTMLResponse:
    html, filename = report_service.report_html(db, study_id, request.app.state.settings.data_dir)
    return HTMLResponse(html, headers=_attachment(filename))


@router.get("/studies/{study_id}/analysis/figures/{filename}", include_in_schema=False)
def figure_download(
    request: Request, db: DbSession, _user: StaffUser, study_id: DbId, filename: str
) -> Response:
    data_dir = request.app.state.settings.data_dir
    data, media_type = report_service.figure_file(db, study_id, filename, data_dir)
    return Response(data, media_type=media_type, headers=_attachment(filename))


def _export_content() -> dict[str, Any]:
    """The export's media types for /openapi.json: a file download, JSON only for `json`."""
    content: dict[str, Any] = {}
    for fmt, (media_type, _suffix) in export_service.FORMATS.items():
        bare = media_type.split(";")[0]
        if fmt == "json":
            content[bare] = {"schema": DesignExport.model_json_schema()}
        else:
            content.setdefault(bare, {"schema": {"type": "string"}})
    return content


@api_router.get(
    "/{study_id}/export",
    response_class=Response,
    responses={200: {"description": "The export file", "content": _export_content()}},
)
def api_export(
    db: DbSession,
    _user: StaffUser,
    study_id: DbId,
    format: ExportFormat = Query("csv", description="csv (tidy long), wide, json, mrmc or r"),
) -> Response:
    """Download the study's ratings: tidy long CSV, wide CSV, JSON, MRMC CSV or the R script."""
    body, media_type, filename = export_service.export_study(db, study_id, format)
    return Response(body, media_type=media_type, headers=_attachment(filename))


@api_router.get("/{study_id}/analysis", response_model=AnalysisOut)
def api_analysis(
    request: Request, db: DbSession, _user: StaffUser, study_id: DbId
) -> dict[str, Any]:
    """The full analysis as JSON (stable keys; `warnings` lists what limits the numbers).

    Each item's `clmm` (R) comes from the cache or is fitted in the background
    (`status: "running"`: ask again later).
    """
    return analysis_service.analyze_study(
        db, study_id, data_dir=request.app.state.settings.data_dir, clmm="background"
    )
