"""Append-only audit trail of security-relevant and study-changing actions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from app.models import AuditEvent, User


def record(
    db: Session,
    *,
    actor: User | None,
    action: str,
    object_type: str = "",
    object_id: object = "",
    detail: Mapping[str, Any] | None = None,
    ip: str = "",
    subject: str = "",
) -> AuditEvent:
    """Add an audit event to the current transaction (it commits or rolls back with it)."""
    event = AuditEvent(
        actor_id=actor.id if actor is not None else None,
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        detail=dict(detail or {}),
        ip=ip[:64],
        subject=subject[:128],
    )
    db.add(event)
    return event
