"""Numbers for the admin dashboard: what exists, what is running, what changed recently."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import AuditEvent, Checkpoint, Image, Job, Study, User
from app.services.maps.jobs import ACTIVE, job_json, recent_jobs


@dataclass(frozen=True)
class Dashboard:
    users_by_role: dict[str, int]
    checkpoints: int
    images: int
    studies_by_status: dict[str, int]
    active_jobs: int
    jobs: list[dict[str, Any]]
    events: list[dict[str, Any]]


def _grouped(db: Session, column: Any, model: Any) -> dict[str, int]:
    rows = db.execute(select(column, func.count(model.id)).group_by(column))
    return {str(k): int(v) for k, v in rows}


def recent_events(db: Session, limit: int = 15) -> list[dict[str, Any]]:
    rows = db.execute(
        select(AuditEvent, User.username)
        .outerjoin(User, User.id == AuditEvent.actor_id)
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    return [
        {
            "at": event.at,
            "actor": username or "system",
            "action": event.action,
            "object": f"{event.object_type} {event.object_id}".strip(),
        }
        for event, username in rows
    ]


def dashboard(db: Session) -> Dashboard:
    return Dashboard(
        users_by_role=_grouped(db, User.role, User),
        checkpoints=int(db.scalar(select(func.count(Checkpoint.id))) or 0),
        images=int(db.scalar(select(func.count(Image.id))) or 0),
        studies_by_status=_grouped(db, Study.status, Study),
        active_jobs=int(db.scalar(select(func.count(Job.id)).where(Job.status.in_(ACTIVE))) or 0),
        jobs=[job_json(j) for j in recent_jobs(db, limit=8)],
        events=recent_events(db),
    )
