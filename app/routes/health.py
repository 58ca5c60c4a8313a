"""Liveness and readiness: used by docker-compose health checks and load balancers."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy import text

from app.auth.deps import DbSession, public

router = APIRouter(tags=["health"])


@router.get("/healthz", dependencies=[Depends(public)])
def health(db: DbSession) -> dict[str, str]:
    db.execute(text("SELECT 1"))
    return {"status": "ok"}
