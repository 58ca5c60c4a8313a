"""Login/logout pages, invite links, and bearer tokens for the JSON API."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from app.auth.cookies import clear_session_cookie, set_session_cookie
from app.auth.deps import Csrf, DbSession, current_session, optional_user, public
from app.auth.passwords import MAX_PASSWORD_LENGTH
from app.config import Settings
from app.errors import Invalid
from app.models import AuthSession, User
from app.services.accounts import auth as auth_service
from app.web import client_ip, render

router = APIRouter(tags=["auth"])
api_router = APIRouter(tags=["auth"])

Public = Depends(public)
MaybeUser = Annotated[User | None, Depends(optional_user)]


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect would make our login page a phishing tool."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@router.get("/login", dependencies=[Public], include_in_schema=False)
def login_page(request: Request, user: MaybeUser, next: str = "/") -> Response:
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html", {"next": safe_next(next)})


@router.post("/login", dependencies=[Public, Csrf], include_in_schema=False)
def login_submit(
    request: Request,
    db: DbSession,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    old = getattr(request.state, "auth_session", None)
    result = auth_service.authenticate(
        db,
        _settings(request),
        username=username,
        password=password,
        ip=client_ip(request),
        kind="web",
    )
    if result.session is None:
        # Returned, not raised: the failed-login audit event must commit (rate limiting).
        return render(
            request,
            "login.html",
            {"next": safe_next(next), "username": username, "error": result.error},
            status_code=401,
        )
    if old is not None:  # a new login replaces the old session (no session fixation)
        auth_service.logout(db, old, ip=client_ip(request))
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(request, response, result.session.token, _settings(request))
    return response


@router.post("/logout", include_in_schema=False, dependencies=[Public, Csrf])
def logout(
    request: Request,
    db: DbSession,
    session: Annotated[AuthSession | None, Depends(current_session)],
) -> Response:
    """Public on purpose: logging out with an already expired session just lands on /login."""
    if session is not None:
        auth_service.logout(db, session, ip=client_ip(request))
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response)
    return response


@router.get("/invite/{token}", dependencies=[Public], include_in_schema=False)
def invite_page(request: Request, db: DbSession, token: str, _user: MaybeUser) -> Response:
    # _user resolves any current session so the form carries the CSRF token POST will expect.
    invite = auth_service.find_invite(db, token)
    return render(request, "invite.html", {"invitee": invite.user, "token": token})


@router.post("/invite/{token}", dependencies=[Public, Csrf], include_in_schema=False)
def invite_submit(
    request: Request,
    db: DbSession,
    token: str,
    password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)],
    password_confirm: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH)],
    display_name: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    try:
        _user, issued = auth_service.accept_invite(
            db,
            _settings(request),
            token=token,
            password=password,
            password_confirm=password_confirm,
            display_name=display_name,
            ip=client_ip(request),
        )
    except Invalid as exc:
        # Show the form again with the reason; the invite stays usable.
        invite = auth_service.find_invite(db, token)
        return render(
            request,
            "invite.html",
            {"invitee": invite.user, "token": token, "error": exc.message},
            status_code=422,
        )
    response = RedirectResponse("/", status_code=303)
    set_session_cookie(request, response, issued.token, _settings(request))
    return response


class TokenRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: dt.datetime


@api_router.post(
    "/auth/token",
    dependencies=[Public],
    response_model=TokenResponse,
    responses={401: {"description": "Wrong username or password"}, 429: {"description": "Rate"}},
)
def issue_token(request: Request, db: DbSession, body: TokenRequest) -> Response:
    """Exchange a username and password for a bearer token (`Authorization: Bearer …`)."""
    result = auth_service.authenticate(
        db,
        _settings(request),
        username=body.username,
        password=body.password,
        ip=client_ip(request),
        kind="api",
    )
    if result.session is None:
        return JSONResponse(
            {"detail": result.error, "code": "invalid_credentials"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    payload = TokenResponse(
        access_token=result.session.token, expires_at=result.session.row.expires_at
    )
    return JSONResponse(payload.model_dump(mode="json"))
