"""`/admin`: the admin's landing page (counts, links, recent jobs and audit events) and the
paged, filterable audit log (`/admin/audit`, `GET /api/v1/audit`)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
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


def _filter(actor: str, action: str, obj: str) -> AuditFilter:
    return AuditFilter(actor=actor[:128], action=action[:64], object=obj[:100])


@router.get("/admin/audit", include_in_schema=False)
def audit_log_page(
    request: Request,
    db: DbSession,
    _admin: AdminUser,
    actor: str = "",
    action: str = "",
    obj: str = Query("", alias="object"),
    page: int = Query(1, ge=1),
) -> Response:
    flt = _filter(actor, action, obj)
    return render(request, "admin/audit.html", {"log": audit_page(db, flt, page), "flt": flt})


@api_router.get("", response_model=AuditPageOut)
def api_audit_log(
    db: DbSession,
    _admin: AdminUser,
    actor: str = "",
    action: str = "",
    obj: str = Query("", alias="object"),
    page: int = Query(1, ge=1),
) -> AuditPageOut:
    """Newest first, 50 a page. `actor`: a username or "system"; `action`: exact, or a prefix
    ending in "." ("user."); `object`: a type ("study") or a type and id ("study 7")."""
    return AuditPageOut.of(audit_page(db, _filter(actor, action, obj), page))
