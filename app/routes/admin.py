"""`/admin`: the admin's landing page (counts, links, recent jobs and audit events)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.auth.deps import AdminUser, DbSession
from app.services.accounts.dashboard import dashboard
from app.web import render

router = APIRouter(tags=["admin"])


@router.get("/admin", include_in_schema=False)
def admin_dashboard(request: Request, db: DbSession, _admin: AdminUser) -> Response:
    return render(request, "admin/dashboard.html", {"dash": dashboard(db)})
