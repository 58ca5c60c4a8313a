"""Bodies of the admin users API (`/api/v1/users`): what an admin sends and gets back.

Never a password or its hash: an account leaves the server as `UserOut`, and an invite link
only once, in the answer that issued it.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from app.auth.passwords import MAX_PASSWORD_LENGTH
from app.models import User
from app.services.accounts import users as users_service
from app.services.accounts.auditlog import AuditEntry, AuditPage

RoleName = Literal["admin", "researcher", "rater"]


class InviteOut(BaseModel):
    """The user's latest invite link, as the admin page shows it (never the link itself)."""

    state: Literal["none", "pending", "expired", "used", "revoked"]
    expires_at: dt.datetime | None = None


class UserOut(BaseModel):
    """An account as the API shows it: no password hash, no token."""

    id: int
    username: str
    display_name: str
    role: RoleName
    is_active: bool
    last_login_at: dt.datetime | None
    created_at: dt.datetime
    invite: InviteOut | None = None

    @classmethod
    def of(cls, user: User, invite: users_service.InviteState | None = None) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            role=user.role,  # type: ignore[arg-type]  # a Role value (CHECK constraint)
            is_active=user.is_active,
            last_login_at=user.last_login_at,
            created_at=user.created_at,
            invite=(
                InviteOut(state=invite.state, expires_at=invite.expires_at)  # type: ignore[arg-type]
                if invite
                else None
            ),
        )


class UserCreate(BaseModel):
    username: str = Field(max_length=64)
    role: RoleName
    display_name: str = Field(default="", max_length=128)
    password: str | None = Field(default=None, max_length=MAX_PASSWORD_LENGTH)


class InviteLink(BaseModel):
    """A fresh single-use invite link: shown once, in this answer only."""

    invite_url: str
    expires_at: dt.datetime


class UserCreated(UserOut):
    """A new account; `invite_url` when it was created without a password."""

    invite_url: str | None = None


class RoleChange(BaseModel):
    role: RoleName


class BulkInvites(BaseModel):
    """A CSV with a header row: `username` and/or `display_name` (or `name`), optional `role`."""

    csv: str = Field(max_length=256 * 1024)
    default_role: RoleName = "rater"


class BulkInvitesOut(BaseModel):
    """The new accounts and their links; `links_csv` is the same as a file (shown only here)."""

    users: list[UserCreated]
    links_csv: str


class AuditPageOut(BaseModel):
    """One page of the audit log, newest first; `actions` lists every action recorded."""

    events: list[AuditEntry]  # the service's row, served as it is
    page: int
    pages: int
    total: int
    actions: list[str]

    @classmethod
    def of(cls, page: AuditPage) -> AuditPageOut:
        return cls(
            events=page.entries,
            page=page.page,
            pages=page.pages,
            total=page.total,
            actions=page.actions,
        )
