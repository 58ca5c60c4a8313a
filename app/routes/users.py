"""Admin user management: /admin/users pages and the /api/v1/users JSON API (admins only)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from app.auth.deps import AdminUser, Csrf, DbSession
from app.auth.passwords import MAX_PASSWORD_LENGTH
from app.errors import Conflict, Invalid
from app.models import User
from app.services.accounts import users as users_service
from app.services.accounts.users import IssuedInvite, UserRow
from app.web import client_ip, render

router = APIRouter(tags=["users"])
api_router = APIRouter(prefix="/users", tags=["users"])


def _invite_hours(request: Request) -> int:
    return int(request.app.state.settings.invite_hours)


def invite_base_url(request: Request) -> str:
    """Links shown in the browser point at the host the admin is using right now."""
    return str(request.base_url).rstrip("/")


# --- pages ------------------------------------------------------------------------------------


def _render_users(
    request: Request,
    db: DbSession,
    *,
    flash: str | None = None,
    flash_kind: str = "ok",
    invite: IssuedInvite | None = None,
    invitee: User | None = None,
    status_code: int = 200,
    form: dict[str, str] | None = None,
) -> Response:
    return render(
        request,
        "admin/users.html",
        {
            "rows": users_service.list_users(db),
            "flash": flash,
            "flash_kind": flash_kind,
            "invite_url": invite.url(invite_base_url(request)) if invite else None,
            "invite_expires": invite.invite.expires_at if invite else None,
            "invitee": invitee,
            "form": form or {},
        },
        status_code=status_code,
    )


@router.get("/admin/users", include_in_schema=False)
def users_page(request: Request, db: DbSession, _admin: AdminUser, done: str = "") -> Response:
    messages = {
        "deactivated": "Account deactivated; its sessions were ended.",
        "reactivated": "Account reactivated.",
        "revoked": "Invite link revoked.",
    }
    return _render_users(request, db, flash=messages.get(done))


@router.post("/admin/users", dependencies=[Csrf], include_in_schema=False)
def users_create(
    request: Request,
    db: DbSession,
    admin: AdminUser,
    username: Annotated[str, Form(max_length=200)],
    role: Annotated[str, Form(max_length=32)],
    display_name: Annotated[str, Form(max_length=500)] = "",
    password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)] = "",
) -> Response:
    """Rendered, not redirected: an invite link is shown exactly once and never put in a URL."""
    try:
        user, invite = users_service.create_user(
            db,
            actor=admin,
            username=username,
            role=role,
            display_name=display_name,
            password=password or None,
            invite_hours=_invite_hours(request),
            ip=client_ip(request),
        )
    except (Invalid, Conflict) as exc:
        # Same page again, with the reason and the admin's input (never the password).
        # create_user validates before it writes, so there is nothing to roll back.
        form = {"username": username, "role": role, "display_name": display_name}
        return _render_users(
            request,
            db,
            flash=exc.message,
            flash_kind="error",
            form=form,
            status_code=exc.status_code,
        )
    message = f"Created {user.role} {user.username!r}."
    return _render_users(request, db, flash=message, invite=invite, invitee=user, status_code=201)


@router.post("/admin/users/{user_id}/invite", dependencies=[Csrf], include_in_schema=False)
def users_invite(request: Request, db: DbSession, admin: AdminUser, user_id: int) -> Response:
    user = users_service.get_user(db, user_id)
    invite = users_service.issue_invite(
        db, actor=admin, user=user, hours=_invite_hours(request), ip=client_ip(request)
    )
    message = f"New invite link for {user.username!r}; any older link no longer works."
    return _render_users(request, db, flash=message, invite=invite, invitee=user)


@router.post("/admin/users/{user_id}/invite/revoke", dependencies=[Csrf], include_in_schema=False)
def users_revoke_invite(
    request: Request, db: DbSession, admin: AdminUser, user_id: int
) -> Response:
    user = users_service.get_user(db, user_id)
    users_service.revoke_invites(db, actor=admin, user=user, ip=client_ip(request))
    return RedirectResponse("/admin/users?done=revoked", status_code=303)


@router.post("/admin/users/{user_id}/deactivate", dependencies=[Csrf], include_in_schema=False)
def users_deactivate(request: Request, db: DbSession, admin: AdminUser, user_id: int) -> Response:
    user = users_service.get_user(db, user_id)
    users_service.deactivate_user(db, actor=admin, user=user, ip=client_ip(request))
    return RedirectResponse("/admin/users?done=deactivated", status_code=303)


@router.post("/admin/users/{user_id}/reactivate", dependencies=[Csrf], include_in_schema=False)
def users_reactivate(request: Request, db: DbSession, admin: AdminUser, user_id: int) -> Response:
    user = users_service.get_user(db, user_id)
    users_service.reactivate_user(db, actor=admin, user=user, ip=client_ip(request))
    return RedirectResponse("/admin/users?done=reactivated", status_code=303)


# --- JSON API ---------------------------------------------------------------------------------


class InviteOut(BaseModel):
    state: str
    expires_at: dt.datetime | None = None


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str
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
            role=user.role,
            is_active=user.is_active,
            last_login_at=user.last_login_at,
            created_at=user.created_at,
            invite=InviteOut(state=invite.state, expires_at=invite.expires_at) if invite else None,
        )


class UserCreate(BaseModel):
    username: str = Field(max_length=64)
    role: Literal["admin", "researcher", "rater"]
    display_name: str = Field(default="", max_length=128)
    password: str | None = Field(default=None, max_length=MAX_PASSWORD_LENGTH)


class InviteLink(BaseModel):
    invite_url: str
    expires_at: dt.datetime


class UserCreated(UserOut):
    invite_url: str | None = None


def _row_out(row: UserRow) -> UserOut:
    return UserOut.of(row.user, row.invite)


@api_router.get("", response_model=list[UserOut])
def api_list_users(db: DbSession, _admin: AdminUser) -> list[UserOut]:
    return [_row_out(r) for r in users_service.list_users(db)]


@api_router.post("", dependencies=[Csrf], status_code=201, response_model=UserCreated)
def api_create_user(
    request: Request, db: DbSession, admin: AdminUser, body: UserCreate
) -> UserCreated:
    """Without `password` the response carries a single-use `invite_url` (shown only here)."""
    user, invite = users_service.create_user(
        db,
        actor=admin,
        username=body.username,
        role=body.role,
        display_name=body.display_name,
        password=body.password,
        invite_hours=_invite_hours(request),
        ip=client_ip(request),
    )
    out = UserOut.of(user, users_service.invite_state(invite.invite if invite else None))
    url = invite.url(request.app.state.settings.base_url) if invite else None
    return UserCreated(**out.model_dump(), invite_url=url)


@api_router.post("/{user_id}/invite", dependencies=[Csrf], response_model=InviteLink)
def api_invite_user(request: Request, db: DbSession, admin: AdminUser, user_id: int) -> InviteLink:
    user = users_service.get_user(db, user_id)
    invite = users_service.issue_invite(
        db, actor=admin, user=user, hours=_invite_hours(request), ip=client_ip(request)
    )
    return InviteLink(
        invite_url=invite.url(request.app.state.settings.base_url),
        expires_at=invite.invite.expires_at,
    )


@api_router.post("/{user_id}/invite/revoke", dependencies=[Csrf], response_model=UserOut)
def api_revoke_invite(request: Request, db: DbSession, admin: AdminUser, user_id: int) -> UserOut:
    user = users_service.get_user(db, user_id)
    users_service.revoke_invites(db, actor=admin, user=user, ip=client_ip(request))
    return UserOut.of(user)


@api_router.post("/{user_id}/deactivate", dependencies=[Csrf], response_model=UserOut)
def api_deactivate_user(request: Request, db: DbSession, admin: AdminUser, user_id: int) -> UserOut:
    user = users_service.get_user(db, user_id)
    return UserOut.of(
        users_service.deactivate_user(db, actor=admin, user=user, ip=client_ip(request))
    )


@api_router.post("/{user_id}/reactivate", dependencies=[Csrf], response_model=UserOut)
def api_reactivate_user(request: Request, db: DbSession, admin: AdminUser, user_id: int) -> UserOut:
    user = users_service.get_user(db, user_id)
    return UserOut.of(
        users_service.reactivate_user(db, actor=admin, user=user, ip=client_ip(request))
    )
