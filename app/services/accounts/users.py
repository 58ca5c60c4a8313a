"""User accounts: creation, validation, invites, (de)activation, first-admin bootstrap.

Every change writes an audit event in the caller's transaction. Services never commit.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import unicodedata
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, hash_password
from app.auth.sessions import revoke_all_for_user
from app.auth.tokens import new_token, token_hash
from app.errors import Conflict, Invalid, NotFound
from app.models import Invite, Role, User
from app.models.base import utcnow
from app.services import audit

# Letters, digits and . _ - only: usernames end up in URLs, CSV exports and log lines.
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")
MAX_DISPLAY_NAME = 128


# --- validation -------------------------------------------------------------------------------


def validate_username(username: str) -> str:
    name = username.strip()
    if not USERNAME_RE.fullmatch(name):
        raise Invalid(
            "A username has 2–64 characters: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    return name


def validate_display_name(display_name: str) -> str:
    """Any printable text (it is always escaped when shown); no control characters."""
    name = display_name.strip()
    if len(name) > MAX_DISPLAY_NAME:
        raise Invalid(f"A display name has at most {MAX_DISPLAY_NAME} characters.")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in name):
        raise Invalid("A display name cannot contain control characters.")
    return name


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"A password has at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise Invalid(f"A password has at most {MAX_PASSWORD_LENGTH} characters.")
    return password


def validate_role(role: str) -> str:
    try:
        return Role(role).value
    except ValueError:
        raise Invalid(f"Unknown role {role!r}: use admin, researcher or rater.") from None


# --- queries ----------------------------------------------------------------------------------


def get_user(db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    return user


def get_user_by_username(db: Session, username: str) -> User:
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"No user named {username!r}.")
    return user


def find_user(db: Session, username: str) -> User | None:
    """The user named `username`, or None: for callers that create the account when missing."""
    return db.scalar(select(User).where(User.username == username))


@dataclass(frozen=True)
class InviteState:
    """What the admin page shows about a user's latest invite."""

    state: str  # "none" | "pending" | "expired" | "used" | "revoked"
    expires_at: dt.datetime | None = None


@dataclass(frozen=True)
class UserRow:
    user: User
    invite: InviteState


def invite_state(invite: Invite | None, now: dt.datetime | None = None) -> InviteState:
    if invite is None:
        return InviteState("none")
    now = now or utcnow()
    if invite.used_at is not None:
        return InviteState("used", invite.expires_at)
    if invite.revoked_at is not None:
        return InviteState("revoked", invite.expires_at)
    if invite.expires_at <= now:
        return InviteState("expired", invite.expires_at)
    return InviteState("pending", invite.expires_at)


def list_users(db: Session, query: str = "") -> list[UserRow]:
    """Every user (or those whose username or name contains `query`, any case) with the state
    of their most recent invite (one query each, not per row)."""
    stmt = select(User).order_by(User.role, User.username)
    needle = query.strip().lower()
    if needle:
        pattern = "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(
            func.lower(User.username).like(pattern, escape="\\")
            | func.lower(User.display_name).like(pattern, escape="\\")
        )
    users = list(db.scalars(stmt))
    latest_ids = select(func.max(Invite.id)).group_by(Invite.user_id)
    latest = {i.user_id: i for i in db.scalars(select(Invite).where(Invite.id.in_(latest_ids)))}
    now = utcnow()
    return [UserRow(u, invite_state(latest.get(u.id), now)) for u in users]


# --- changes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedInvite:
    """A fresh invite: the plain token exists only here (the database keeps its hash)."""

    token: str
    invite: Invite

    def url(self, base_url: str) -> str:
        return f"{base_url.rstrip('/')}/invite/{self.token}"


def create_user(
    db: Session,
    *,
    actor: User | None,
    username: str,
    role: str,
    display_name: str = "",
    password: str | None = None,
    invite_hours: int = 72,
    ip: str = "",
) -> tuple[User, IssuedInvite | None]:
    """Create an account. Without a password the user gets an invite link to set one."""
    name = validate_username(username)
    role_value = validate_role(role)
    shown = validate_display_name(display_name)
    hashed = hash_password(validate_password(password)) if password else None
    if db.scalar(select(User.id).where(func.lower(User.username) == name.lower())) is not None:
        raise Conflict(f"The username {name!r} is taken.")
    user = User(username=name, display_name=shown, role=role_value, password_hash=hashed)
    db.add(user)
    db.flush()
    audit.record(
        db,
        actor=actor,
        action="user.created",
        object_type="user",
        object_id=user.id,
        detail={"username": name, "role": role_value, "with_password": hashed is not None},
        ip=ip,
    )
    issued = None
    if hashed is None:
        issued = issue_invite(db, actor=actor, user=user, hours=invite_hours, ip=ip)
    return user, issued


def issue_invite(
    db: Session, *, actor: User | None, user: User, hours: int = 72, ip: str = ""
) -> IssuedInvite:
    """A new single-use link; any earlier open link for the user stops working."""
    if not user.is_active:
        raise Conflict("This account is deactivated; reactivate it before inviting.")
    _revoke_open_invites(db, user)
    token = new_token()
    invite = Invite(
        token_hash=token_hash(token),
        user_id=user.id,
        created_by_id=actor.id if actor is not None else None,
        expires_at=utcnow() + dt.timedelta(hours=hours),
    )
    db.add(invite)
    db.flush()
    audit.record(
        db,
        actor=actor,
        action="invite.issued",
        object_type="user",
        object_id=user.id,
        detail={"invite_id": invite.id, "expires_at": invite.expires_at.isoformat()},
        ip=ip,
    )
    return IssuedInvite(token=token, invite=invite)


def revoke_invites(db: Session, *, actor: User | None, user: User, ip: str = "") -> int:
    """Revoke the user's open invite links; returns how many were open."""
    count = _revoke_open_invites(db, user)
    if count == 0:
        raise Conflict("This user has no open invite link.")
    audit.record(
        db,
        actor=actor,
        action="invite.revoked",
        object_type="user",
        object_id=user.id,
        detail={"count": count},
        ip=ip,
    )
    return count


def _revoke_open_invites(db: Session, user: User) -> int:
    now = utcnow()
    open_invites = db.scalars(
        select(Invite).where(
            Invite.user_id == user.id, Invite.used_at.is_(None), Invite.revoked_at.is_(None)
        )
    ).all()
    for invite in open_invites:
        invite.revoked_at = now
    return len(open_invites)


def deactivate_user(db: Session, *, actor: User | None, user: User, ip: str = "") -> User:
    """Lock an account out now: its sessions, API tokens and invite links stop working.

    `actor` None means the operator's shell (`radsal users deactivate`).
    """
    if actor is not None and user.id == actor.id:
        raise Conflict("You cannot deactivate your own account.")
    if not user.is_active:
        raise Conflict("This account is already deactivated.")
    user.is_active = False
    revoke_all_for_user(db, user)
    _revoke_open_invites(db, user)
    audit.record(
        db, actor=actor, action="user.deactivated", object_type="user", object_id=user.id, ip=ip
    )
    db.flush()
    return user


def reactivate_user(db: Session, *, actor: User | None, user: User, ip: str = "") -> User:
    if user.is_active:
        raise Conflict("This account is already active.")
    user.is_active = True
    audit.record(
        db, actor=actor, action="user.reactivated", object_type="user", object_id=user.id, ip=ip
    )
    db.flush()
    return user


def change_role(db: Session, *, actor: User | None, user: User, role: str, ip: str = "") -> User:
    """Give an account another role; it applies from the user's next request.

    An admin cannot change their own role (they could lock everyone out of administration),
    and the last active admin keeps theirs. The user's existing trials and ratings stay.
    """
    new_role = validate_role(role)
    if actor is not None and user.id == actor.id:
        raise Conflict("You cannot change your own role; ask another admin.")
    if new_role == user.role:
        raise Conflict(f"{user.username!r} already is a {new_role}.")
    if user.role == Role.admin.value and user.is_active:
        admins = db.scalar(
            select(func.count(User.id)).where(
                User.role == Role.admin.value, User.is_active.is_(True)
            )
        )
        if int(admins or 0) <= 1:
            raise Conflict("This is the last active admin; make someone else admin first.")
    old_role = user.role
    user.role = new_role
    audit.record(
        db,
        actor=actor,
        action="user.role_changed",
        object_type="user",
        object_id=user.id,
        detail={"from": old_role, "to": new_role},
        ip=ip,
    )
    db.flush()
    return user


def ensure_admin(
    db: Session, username: str = "admin", password: str | None = None
) -> tuple[User, str | None]:
    """Make sure an active admin exists, so a fresh install can be logged into.

    Returns the existing admin and None, or the new admin and its plain password (the only
    time it is available: the database keeps an argon2 hash). A random password is generated
    when none is given.
    """
    existing = db.scalar(
        select(User)
        .where(User.role == Role.admin.value, User.is_active.is_(True))
        .order_by((User.username != username), User.id)
    )
    if existing is not None:
        return existing, None
    plain = password or secrets.token_urlsafe(12)
    user, _ = create_user(
        db,
        actor=None,
        username=username,
        role=Role.admin.value,
        display_name="Administrator",
        password=plain,
    )
    return user, plain
