"""Single sign-on pages: `/login/oidc` sends the browser to the identity provider, which
sends it back to `/login/oidc/callback`. Off (404) unless RADSAL_OIDC_ISSUER is set; the
rules for accounts and roles are in `app/services/accounts/oidc.py`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from app.auth.cookies import set_session_cookie
from app.auth.deps import DbSession, public
from app.config import Settings
from app.errors import Forbidden, Invalid, NotFound
from app.middleware import is_https
from app.services.accounts import auth as auth_service
from app.services.accounts import oidc
from app.web import client_ip, render

router = APIRouter(tags=["auth"])

CALLBACK_PATH = "/login/oidc/callback"


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    if not oidc.enabled(settings):
        raise NotFound("Single sign-on is not configured on this server.")
    return settings


def _redirect_uri(settings: Settings) -> str:
    """What the provider has registered: the public address (RADSAL_BASE_URL), not the Host."""
    return settings.base_url.rstrip("/") + CALLBACK_PATH


def _safe_next(target: str) -> str:
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_error(request: Request, message: str, status_code: int) -> Response:
    response = render(
        request, "login.html", {"next": "/", "error": message}, status_code=status_code
    )
    response.delete_cookie(oidc.STATE_COOKIE, path="/login/oidc")
    return response


@router.get("/login/oidc", dependencies=[Depends(public)], include_in_schema=False)
def oidc_start(request: Request, next: str = "/") -> Response:
    settings = _settings(request)
    try:
        started = oidc.start_login(
            settings, redirect_uri=_redirect_uri(settings), next_path=_safe_next(next[:2000])
        )
    except Invalid as exc:
        return _login_error(request, exc.message, 502)
    response = RedirectResponse(started.url, status_code=303)
    response.set_cookie(
        oidc.STATE_COOKIE,
        started.cookie,
        max_age=oidc.STATE_MAX_AGE_S,
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back to us
        secure=is_https(request, settings),
        path="/login/oidc",
    )
    return response


@router.get(CALLBACK_PATH, dependencies=[Depends(public)], include_in_schema=False)
def oidc_callback(
    request: Request,
    db: DbSession,
    code: str = "",
    state: str = "",
    error: str = "",
    error_description: str = "",
) -> Response:
    settings = _settings(request)
    if error:
        reason = error_description[:300] or error[:100]
        return _login_error(request, f"The sign-on provider did not log you in: {reason}", 403)
    try:
        done = oidc.finish_login(
            db,
            settings,
            code=code[:2000],
            state=state[:200],
            cookie=request.cookies.get(oidc.STATE_COOKIE, ""),
            redirect_uri=_redirect_uri(settings),
            ip=client_ip(request),
        )
    except (Forbidden, Invalid) as exc:
        return _login_error(request, exc.message, exc.status_code)
    old = getattr(request.state, "auth_session", None)
    if old is not None:  # a new login replaces the old session (no session fixation)
        auth_service.logout(db, old, ip=client_ip(request))
    response = RedirectResponse(_safe_next(done.next_path), status_code=303)
    set_session_cookie(request, response, done.session.token, settings)
    response.delete_cookie(oidc.STATE_COOKIE, path="/login/oidc")
    return response
