"""Logging in and out, API tokens, accepting invites, and login rate limiting.

Rate limiting counts recent `login.failed` audit events per username and per client address,
so it needs no extra table and survives restarts and multiple server processes. A failed login
therefore must be *committed*: `authenticate` returns a failure instead of raising, and the
route turns it into a 401 response without rolling the audit event back.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.passwords import hash_password, needs_rehash, verify_password
from app.auth.sessions import IssuedSession, issue_session, revoke_all_for_user, revoke_session
from app.auth.tokens import token_hash
from app.config import Settings
from app.errors import Invalid, NotFound, RateLimited
from app.models import AuditEvent, AuthSession, Invite, User
from app.models.base import utcnow
from app.services import audit
from app.services.accounts.users import validate_display_name, validate_password

LOGIN_FAILED = "login.failed"
BAD_CREDENTIALS = "Wrong username or password."


@dataclass(frozen=True)
class LoginResult:
    """Either `user` + `session` (success) or `error` (wrong credentials, already audited)."""

    user: User | None = None
    session: IssuedSession | None = None
    error: str | None = None


def check_rate_limit(db: Session, settings: Settings, *, username: str, ip: str) -> None:
    """Refuse further attempts once a username or address failed too often in the window."""
    since = utcnow() - dt.timedelta(minutes=settings.login_window_minutes)
    recent = select(func.count(AuditEvent.id)).where(
        AuditEvent.action == LOGIN_FAILED, AuditEvent.at >= since
    )
    by_name = db.scalar(recent.where(AuditEvent.subject == username[:128])) or 0
    by_ip = db.scalar(recent.where(AuditEvent.ip == ip[:64])) if ip else 0
    if by_name >= settings.login_max_failures or (by_ip or 0) >= settings.login_max_failures_per_ip:
        raise RateLimited(
            "Too many failed logins. Wait "
            f"{settings.login_window_minutes} minutes and try again, or ask an admin."
        )


def authenticate(
    db: Session, settings: Settings, *, username: str, password: str, ip: str, kind: str
) -> LoginResult:
    """Check credentials and open a browser session (`kind="web"`) or API token (`"api"`)."""
    username = username.strip()
    check_rate_limit(db, settings, username=username, ip=ip)
    user = db.scalar(select(User).where(User.username == username))
    # verify_password hashes even for unknown users, so timing does not reveal who exists.
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.is_active:
        audit.record(
            db,
            actor=None,
            action=LOGIN_FAILED,
            object_type="user",
            object_id=user.id if user else "",
            subject=username,
            ip=ip,
            detail={"kind": kind, "reason": "inactive" if ok and user else "credentials"},
        )
        return LoginResult(error=BAD_CREDENTIALS)
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    issued = start_session(db, settings, user, kind=kind, ip=ip)
    return LoginResult(user=user, session=issued)


def start_session(
    db: Session,
    settings: Settings,
    user: User,
    *,
    kind: str = "web",
    ip: str = "",
    detail: dict[str, str] | None = None,
) -> IssuedSession:
    """The one way a verified user gets a session, whatever proved who they are (password,
    invite, single sign-on): the session row, the last-login time and the audit event."""
    hours = settings.session_hours if kind == "web" else settings.token_hours
    issued = issue_session(db, user, kind=kind, lifetime=dt.timedelta(hours=hours), ip=ip)
    user.last_login_at = utcnow()
    audit.record(
        db,
        actor=user,
        action="login" if kind == "web" else "token.issued",
        object_type="user",
        object_id=user.id,
        subject=user.username,
        ip=ip,
        detail={"session_id": issued.row.id, **(detail or {})},
    )
    return issued


def logout(db: Session, session: AuthSession, *, ip: str = "") -> None:
    revoke_session(db, session)
    audit.record(
        db,
        actor=session.user,
        action="logout",
        object_type="user",
        object_id=session.user_id,
        ip=ip,
        detail={"session_id": session.id},
    )


def find_invite(db: Session, token: str) -> Invite:
    """The usable invite for a link token, or NotFound saying why it cannot be used."""
    invite = None
    if token and len(token) <= 200:
        invite = db.scalar(select(Invite).where(Invite.token_hash == token_hash(token)))
    if invite is None:
        raise NotFound("This invite link is not valid. Ask the study coordinator for a new one.")
    if invite.used_at is not None:
        raise NotFound("This invite link was already used. Log in with your password instead.")
    if invite.revoked_at is not None or not invite.user.is_active:
        raise NotFound("This invite link was withdrawn. Ask the study coordinator for a new one.")
    if invite.expires_at <= utcnow():
        raise NotFound("This invite link has expired. Ask the study coordinator for a new one.")
    return invite


def accept_invite(
    db: Session,
    settings: Settings,
    *,
    token: str,
    password: str,
    password_confirm: str,
    display_name: str | None = None,
    ip: str = "",
) -> tuple[User, IssuedSession]:
    """Set the password, consume the invite and log the user in (a new browser session)."""
    invite = find_invite(db, token)
    validate_password(password)
    if password != password_confirm:
        raise Invalid("The two passwords do not match.")
    user = invite.user
    if display_name is not None and display_name.strip():
        user.display_name = validate_display_name(display_name)
    user.password_hash = hash_password(password)
    revoke_all_for_user(db, user)  # a new password ends any older session
    invite.used_at = utcnow()
    audit.record(
        db,
        actor=user,
        action="invite.used",
        object_type="user",
        object_id=user.id,
        subject=user.username,
        ip=ip,
        detail={"invite_id": invite.id},
    )
    issued = start_session(db, settings, user, ip=ip, detail={"via": "invite"})
    return user, issued
