"""Browser sessions and API tokens, both stored as AuthSession rows (hash only)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.tokens import new_token, token_hash
from app.models import AuthSession, User
from app.models.base import utcnow

# last_seen_at is refreshed at most this often, so reads do not all turn into writes.
_TOUCH_INTERVAL = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class IssuedSession:
    token: str
    csrf_token: str
    row: AuthSession


def issue_session(
    db: Session, user: User, *, kind: str, lifetime: dt.timedelta, ip: str = ""
) -> IssuedSession:
    token = new_token()
    csrf = new_token(24)
    row = AuthSession(
        token_hash=token_hash(token),
        user_id=user.id,
        kind=kind,
        csrf_token=csrf,
        expires_at=utcnow() + lifetime,
        last_seen_at=utcnow(),
        ip=ip[:64],
    )
    db.add(row)
    db.flush()
    return IssuedSession(token=token, csrf_token=csrf, row=row)


def resolve_session(db: Session, token: str, *, kind: str) -> AuthSession | None:
    """The live session for a token, or None (unknown, expired, revoked, inactive user)."""
    if not token or len(token) > 200:
        return None
    row = db.scalar(
        select(AuthSession).where(
            AuthSession.token_hash == token_hash(token), AuthSession.kind == kind
        )
    )
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if not row.user.is_active:
        return None
    if row.last_seen_at is None or now - row.last_seen_at > _TOUCH_INTERVAL:
        row.last_seen_at = now
    return row


def revoke_session(db: Session, row: AuthSession) -> None:
    row.revoked_at = utcnow()


def revoke_all_for_user(db: Session, user: User) -> None:
    now = utcnow()
    for row in db.scalars(
        select(AuthSession).where(AuthSession.user_id == user.id, AuthSession.revoked_at.is_(None))
    ):
        row.revoked_at = now
