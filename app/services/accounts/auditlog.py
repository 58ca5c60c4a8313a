"""The audit log as an admin reads it: newest first, a page at a time, filtered by who did
what to which object. The dashboard shows the latest few; this is the whole trail."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import AuditEvent, User

PAGE_SIZE = 50


@dataclass(frozen=True)
class AuditFilter:
    """Empty fields match everything. `actor` is a username ("system" = no user), `action` an
    exact action or a prefix ending in "." ("user."), `object` "type" or "type id"."""

    actor: str = ""
    action: str = ""
    object: str = ""


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: dt.datetime
    actor: str
    action: str
    object_type: str
    object_id: str
    ip: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class AuditPage:
    entries: list[AuditEntry]
    page: int
    pages: int
    total: int
    actions: list[str]  # every action recorded, for the filter's choices


def _where(stmt: Any, flt: AuditFilter) -> Any:
    actor = flt.actor.strip()
    if actor == "system":
        stmt = stmt.where(AuditEvent.actor_id.is_(None))
    elif actor:
        stmt = stmt.where(func.lower(User.username) == actor.lower())
    action = flt.action.strip()
    if action.endswith("."):
        stmt = stmt.where(AuditEvent.action.startswith(action, autoescape=True))
    elif action:
        stmt = stmt.where(AuditEvent.action == action)
    obj = flt.object.strip().split()
    if obj:
        stmt = stmt.where(AuditEvent.object_type == obj[0])
    if len(obj) > 1:
        stmt = stmt.where(AuditEvent.object_id == obj[1])
    return stmt


def audit_page(db: Session, flt: AuditFilter, page: int = 1) -> AuditPage:
    base = select(AuditEvent, User.username).outerjoin(User, User.id == AuditEvent.actor_id)
    filtered = _where(base, flt)
    total = int(db.scalar(select(func.count()).select_from(filtered.subquery())) or 0)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    rows = db.execute(
        filtered.order_by(AuditEvent.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    )
    entries = [
        AuditEntry(
            id=event.id,
            at=event.at,
            actor=username or "system",
            action=event.action,
            object_type=event.object_type,
            object_id=event.object_id,
            ip=event.ip,
            detail=dict(event.detail or {}),
        )
        for event, username in rows
    ]
    actions = list(db.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))
    return AuditPage(entries, page, pages, total, actions)
