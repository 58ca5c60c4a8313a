"""`/`: send each role to its landing page."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from app.auth.deps import AnyUser
from app.models import Role

router = APIRouter(tags=["pages"])

LANDING = {Role.admin.value: "/admin", Role.researcher.value: "/studies", Role.rater.value: "/rate"}


@router.get("/", include_in_schema=False)
def home(user: AnyUser) -> RedirectResponse:
    return RedirectResponse(LANDING[user.role], status_code=303)
