"""`/admin`: the admin's landing page (counts, links, recent jobs and audit events) and the
paged, filterable audit log (`/admin/audit`, `GET /api/v1/audit`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from app.auth.deps import AdminUser, DbSession
from app.services.accounts.auditlog import AuditFilter, audit_page
from app.services.accounts.dashboard import dashboard
from app.services.accounts.schemas import AuditPageOut
from app.web import render

router = APIRouter(tags=["admin"])
api_router = APIRouter(prefix="/audit", tags=["admin"])


@router.get("/admin", include_in_schema=False)
def admin_dashboard(request: Request, db: DbSession, _admin: AdminUser) -> Response:
    return render(request, "admin/dashboard.html", {"dash": dashboard(db)})


def _filter(
    actor: str = "", action: str = "", obj: Annotated[str, Query(alias="object")] = ""
) -> AuditFilter:
    """The query filters, parsed once for the page and the JSON (a FastAPI dependency)."""
    return AuditFilter(actor=actor[:128], action=action[:64], object=obj[:100])


Filter = Annotated[AuditFilter, Depends(_filter)]
Page = Annotated[int, Query(ge=1)]


@router.get("/admin/audit", include_in_schema=False)
def audit_log_page(
    request: Request,
    db: DbSession,
    _admin: AdminUser,
    flt: Filter,
    page: Page = 1,
) -> Response:
    return render(request, "admin/audit.html", {"log": audit_page(db, flt, page), "flt": flt})


@api_router.get("", response_model=AuditPageOut)
def api_audit_log(
    db: DbSession,
    _admin: AdminUser,
    flt: Filter,
    page: Page = 1,
) -> AuditPageOut:
    """Newest first, 50 a page. `actor`: a username or "system"; `action`: exact, or a prefix
    ending in "." ("user."); `object`: a type ("study") or a type and id ("study 7")."""
    return AuditPageOut.of(audit_page(db, flt, page))
