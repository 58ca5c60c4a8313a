"""Liveness and readiness: used by docker-compose health checks and load balancers."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from app.auth.deps import DbSession, public
from app.db import ping

router = APIRouter(tags=["health"])


class HealthOut(BaseModel):
    """Ready: the app answers and so does its database (anything else is a 5xx)."""

    status: Literal["ok"]


@router.get("/healthz", dependencies=[Depends(public)], response_model=HealthOut)
def health(db: DbSession) -> HealthOut:
    ping(db)
    return HealthOut(status="ok")
