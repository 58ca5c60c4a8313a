"""Jobs: progress (polled by static/js/job_progress.js), cancel, and a recent-jobs page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from app.auth.deps import Csrf, DbSession, StaffUser
from app.ids import DbId
from app.services.maps import jobs as service
from app.services.maps.schemas import JobOut
from app.web import render

router = APIRouter(tags=["jobs"])
api_router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("/jobs", include_in_schema=False)
def jobs_page(request: Request, db: DbSession, _user: StaffUser) -> Response:
    rows = [service.job_json(j) for j in service.recent_jobs(db, limit=50)]
    return render(request, "jobs.html", {"rows": rows})


@router.get("/jobs/{job_id}", include_in_schema=False)
def job_page(request: Request, db: DbSession, _user: StaffUser, job_id: DbId) -> Response:
    job = service.job_json(service.get_job(db, job_id))
    return render(request, "jobs_detail.html", {"job": job})


@router.post("/jobs/{job_id}/cancel", dependencies=[Csrf], include_in_schema=False)
def job_cancel_form(
    db: DbSession, user: StaffUser, job_id: DbId, next: str = ""
) -> RedirectResponse:
    service.cancel_job(db, service.get_job(db, job_id), user)
    target = next if next.startswith("/") and not next.startswith("//") else f"/jobs/{job_id}"
    return RedirectResponse(target, status_code=303)


@api_router.get("/{job_id}", response_model=JobOut)
def api_job(db: DbSession, _user: StaffUser, job_id: DbId) -> dict[str, Any]:
    """`id, kind, status, done, total, error, rate (maps/s), eta_seconds, study_id`."""
    return service.job_json(service.get_job(db, job_id))


@api_router.post("/{job_id}/cancel", dependencies=[Csrf], response_model=JobOut)
def api_cancel(db: DbSession, user: StaffUser, job_id: DbId) -> dict[str, Any]:
    """Drop the job's queued work; a running chunk finishes first. 409 if already finished."""
    return service.job_json(service.cancel_job(db, service.get_job(db, job_id), user))
