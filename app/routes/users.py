"""Admin user management: /admin/users pages and the /api/v1/users JSON API (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import RedirectResponse, Response

from app.auth.deps import AdminUser, Csrf, DbSession
from app.auth.passwords import MAX_PASSWORD_LENGTH
from app.errors import Conflict, Invalid
from app.ids import DbId
from app.models import User
from app.services.accounts import bulk as bulk_service
from app.services.accounts import users as users_service
from app.services.accounts.schemas import (
    BulkInvites,
    BulkInvitesOut,
    InviteLink,
    RoleChange,
    UserCreate,
    UserCreated,
    UserOut,
)
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
    query: str = "",
    undo: User | None = None,
    bulk_links: str | None = None,
    bulk_created: list[tuple[User, IssuedInvite]] | None = None,
    bulk_errors: list[str] | None = None,
) -> Response:
    base = invite_base_url(request)
    return render(
        request,
        "admin/users.html",
        {
            "rows": users_service.list_users(db, query),
            "query": query,
            "undo": undo,
            "bulk_links": bulk_links,
            "bulk_created": [(u, i.url(base), i.invite.expires_at) for u, i in bulk_created or []],
            "bulk_errors": bulk_errors or [],
            "flash": flash,
            "flash_kind": flash_kind,
            "invite_url": invite.url(base) if invite else None,
            "invite_expires": invite.invite.expires_at if invite else None,
            "invitee": invitee,
            "form": form or {},
        },
        status_code=status_code,
    )


@router.get("/admin/users", include_in_schema=False)
def users_page(
    request: Request,
    db: DbSession,
    _admin: AdminUser,
    done: str = "",
    q: str = "",
    user: int | None = None,
) -> Response:
    messages = {
        "deactivated": "Account deactivated; its sessions were ended.",
        "reactivated": "Account reactivated.",
        "revoked": "Invite link revoked.",
        "role": "Role changed; it applies from the user's next click.",
    }
    # Deactivation can be undone from the message (reactivation; sessions stay ended).
    undo = None
    if done == "deactivated" and user is not None:
        candidate = db.get(User, user)
        undo = candidate if candidate is not None and not candidate.is_active else None
    return _render_users(request, db, flash=messages.get(done), query=q[:200], undo=undo)


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
def users_invite(request: Request, db: DbSession, admin: AdminUser, user_id: DbId) -> Response:
    user = users_service.get_user(db, user_id)
    invite = users_service.issue_invite(
        db, actor=admin, user=user, hours=_invite_hours(request), ip=client_ip(request)
    )
    message = f"New invite link for {user.username!r}; any older link no longer works."
    return _render_users(request, db, flash=message, invite=invite, invitee=user)


@router.post("/admin/users/{user_id}/invite/revoke", dependencies=[Csrf], include_in_schema=False)
def users_revoke_invite(
    request: Request, db: DbSession, admin: AdminUser, user_id: DbId
) -> Response:
    user = users_service.get_user(db, user_id)
    users_service.revoke_invites(db, actor=admin, user=user, ip=client_ip(request))
    return RedirectResponse("/admin/users?done=revoked", status_code=303)


@router.post("/admin/users/{user_id}/deactivate", dependencies=[Csrf], include_in_schema=False)
def users_deactivate(request: Request, db: DbSession, admin: AdminUser, user_id: DbId) -> Response:
    user = users_service.get_user(db, user_id)
    users_service.deactivate_user(db, actor=admin, user=user, ip=client_ip(request))
    return RedirectResponse(f"/admin/users?done=deactivated&user={user.id}", status_code=303)


@router.post("/admin/users/{user_id}/reactivate", dependencies=[Csrf], include_in_schema=False)
def users_reactivate(request: Request, db: DbSession, admin: AdminUser, user_id: DbId) -> Response:
    user = users_service.get_user(db, user_id)
    users_service.reactivate_user(db, actor=admin, user=user, ip=client_ip(request))
    return RedirectResponse("/admin/users?done=reactivated", status_code=303)


@router.post("/admin/users/{user_id}/role", dependencies=[Csrf], include_in_schema=False)
def users_role(
    request: Request,
    db: DbSession,
    admin: AdminUser,
    user_id: DbId,
    role: Annotated[str, Form(max_length=32)],
) -> Response:
    user = users_service.get_user(db, user_id)
    try:
        users_service.change_role(db, actor=admin, user=user, role=role, ip=client_ip(request))
    except (Invalid, Conflict) as exc:
        return _render_users(
            request, db, flash=exc.message, flash_kind="error", status_code=exc.status_code
        )
    return RedirectResponse("/admin/users?done=role", status_code=303)


@router.post("/admin/users/bulk", dependencies=[Csrf], include_in_schema=False)
def users_bulk(
    request: Request,
    db: DbSession,
    admin: AdminUser,
    csv_file: Annotated[UploadFile, File()],
    default_role: Annotated[str, Form(max_length=32)] = "rater",
) -> Response:
    """Rendered once with every link and a CSV of them; nothing is kept to show again."""
    data = csv_file.file.read(bulk_service.MAX_BYTES + 1)
    return _bulk(request, db, admin, data, default_role)


def _bulk(request: Request, db: DbSession, admin: User, data: bytes, role: str) -> Response:
    try:
        parsed = bulk_service.parse_invites(db, data, role)
    except Invalid as exc:
        return _render_users(
            request, db, flash=exc.message, flash_kind="error", bulk_errors=[exc.message],
            status_code=422,
        )  # fmt: skip
    if parsed.errors:
        message = "Nobody was invited: fix these lines and upload the file again."
        return _render_users(
            request, db, flash=message, flash_kind="error", bulk_errors=parsed.errors,
            status_code=422,
        )  # fmt: skip
    created = bulk_service.create_invites(
        db,
        actor=admin,
        rows=parsed.rows,
        invite_hours=_invite_hours(request),
        ip=client_ip(request),
    )
    message = f"Invited {len(created)} people. Download or copy the links now: they are shown once."
    return _render_users(
        request,
        db,
        flash=message,
        status_code=201,
        bulk_created=created,
        bulk_links=bulk_service.links_csv(created, invite_base_url(request)),
    )


# --- JSON API ---------------------------------------------------------------------------------


def _row_out(row: UserRow) -> UserOut:
    return UserOut.of(row.user, row.invite)


@api_router.get("", response_model=list[UserOut])
def api_list_users(db: DbSession, _admin: AdminUser, q: str = "") -> list[UserOut]:
    """`q` keeps users whose username or display name contains it (any case)."""
    return [_row_out(r) for r in users_service.list_users(db, q[:200])]


@api_router.post("/bulk", dependencies=[Csrf], status_code=201, response_model=BulkInvitesOut)
def api_bulk_invite(
    request: Request, db: DbSession, admin: AdminUser, body: BulkInvites
) -> BulkInvitesOut:
    """Every problem in the CSV at once (422, nothing created), or every account with its link."""
    parsed = bulk_service.parse_invites(db, body.csv.encode(), body.default_role)
    if parsed.errors:
        raise Invalid(" ".join(parsed.errors))
    created = bulk_service.create_invites(
        db,
        actor=admin,
        rows=parsed.rows,
        invite_hours=_invite_hours(request),
        ip=client_ip(request),
    )
    base = request.app.state.settings.base_url
    return BulkInvitesOut(
        users=[
            UserCreated(
                **UserOut.of(user, users_service.invite_state(invite.invite)).model_dump(),
                invite_url=invite.url(base),
            )
            for user, invite in created
        ],
        links_csv=bulk_service.links_csv(created, base),
    )


@api_router.post("/{user_id}/role", dependencies=[Csrf], response_model=UserOut)
def api_change_role(
    request: Request, db: DbSession, admin: AdminUser, user_id: DbId, body: RoleChange
) -> UserOut:
    user = users_service.get_user(db, user_id)
    return UserOut.of(
        users_service.change_role(db, actor=admin, user=user, role=body.role, ip=client_ip(request))
    )


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
def api_invite_user(request: Request, db: DbSession, admin: AdminUser, user_id: DbId) -> InviteLink:
    user = users_service.get_user(db, user_id)
    invite = users_service.issue_invite(
        db, actor=admin, user=user, hours=_invite_hours(request), ip=client_ip(request)
    )
    return InviteLink(
        invite_url=invite.url(request.app.state.settings.base_url),
        expires_at=invite.invite.expires_at,
    )


@api_router.post("/{user_id}/invite/revoke", dependencies=[Csrf], response_model=UserOut)
def api_revoke_invite(request: Request, db: DbSession, admin: AdminUser, user_id: DbId) -> UserOut:
    user = users_service.get_user(db, user_id)
    users_service.revoke_invites(db, actor=admin, user=user, ip=client_ip(request))
    return UserOut.of(user)


@api_router.post("/{user_id}/deactivate", dependencies=[Csrf], response_model=UserOut)
def api_deactivate_user(
    request: Request, db: DbSession, admin: AdminUser, user_id: DbId
) -> UserOut:
    user = users_service.get_user(db, user_id)
    return UserOut.of(
        users_service.deactivate_user(db, actor=admin, user=user, ip=client_ip(request))
    )


@api_router.post("/{user_id}/reactivate", dependencies=[Csrf], response_model=UserOut)
def api_reactivate_user(
    request: Request, db: DbSession, admin: AdminUser, user_id: DbId
) -> UserOut:
    user = users_service.get_user(db, user_id)
    return UserOut.of(
        users_service.reactivate_user(db, actor=admin, user=user, ip=client_ip(request))
    )
