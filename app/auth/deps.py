"""FastAPI dependencies: who is calling, may they, and is their form post genuine.

Every route declares its audience with one of these (a test walks the route table and fails
on any route that does not). Browser requests authenticate with the session cookie; API
requests with `Authorization: Bearer <token>`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.auth.sessions import resolve_session
from app.auth.tokens import tokens_equal
from app.db import get_db
from app.errors import Forbidden, Unauthorized
from app.models import AuthSession, Role, User

SESSION_COOKIE = "radsal_session"
CSRF_FORM_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"

DbSession = Annotated[Session, Depends(get_db, scope="function")]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return None


def current_session(request: Request, db: DbSession) -> AuthSession | None:
    """The caller's AuthSession (cookie or bearer), cached on the request."""
    if hasattr(request.state, "auth_session"):
        return request.state.auth_session  # type: ignore[no-any-return]
    row: AuthSession | None = None
    bearer = _bearer(request)
    if bearer is not None:
        row = resolve_session(db, bearer, kind="api")
        request.state.auth_via = "bearer"
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:
            row = resolve_session(db, cookie, kind="web")
        request.state.auth_via = "cookie"
    request.state.auth_session = row
    request.state.user = row.user if row is not None else None
    return row


def optional_user(
    session: Annotated[AuthSession | None, Depends(current_session)],
) -> User | None:
    return session.user if session is not None else None


def public(request: Request) -> None:
    """Marks a route as deliberately open to anonymous callers (login, health, static)."""
    request.state.audience = "public"


def require_roles(*roles: Role) -> Callable[..., User]:
    """Dependency factory: the caller must be logged in with one of `roles`."""
    allowed = {r.value for r in roles}

    def dependency(
        request: Request,
        session: Annotated[AuthSession | None, Depends(current_session)],
    ) -> User:
        if session is None:
            raise Unauthorized("Please log in.")
        if session.user.role not in allowed:
            raise Forbidden("You do not have access to this page.")
        request.state.audience = ",".join(sorted(allowed))
        return session.user

    dependency.__name__ = "require_" + "_or_".join(sorted(allowed))
    dependency.allowed_roles = frozenset(allowed)  # type: ignore[attr-defined]
    return dependency


def any_user() -> Callable[..., User]:
    return require_roles(Role.admin, Role.researcher, Role.rater)


async def verify_csrf(
    request: Request,
    session: Annotated[AuthSession | None, Depends(current_session)],
) -> None:
    """Reject a cookie-authenticated state change without the session's CSRF token.

    Bearer-token callers carry no ambient credentials, so they need none. The token comes from
    the form field (HTML forms) or the X-CSRF-Token header (fetch from our own pages).
    """
    if getattr(request.state, "auth_via", None) == "bearer":
        return
    if session is None and getattr(request.state, "audience", None) != "public":
        # Route dependencies run before the role check: without this, an anonymous caller
        # would hear "forged form" (403) where the truth, and the API contract, is 401.
        raise Unauthorized("Please log in.")
    expected = session.csrf_token if session is not None else request.cookies.get("radsal_csrf")
    sent = request.headers.get(CSRF_HEADER)
    if sent is None:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FORM_FIELD)
            sent = value if isinstance(value, str) else None
    if not expected or not sent or not tokens_equal(expected, sent):
        raise Forbidden("The form expired or did not come from this site. Reload and try again.")


AdminUser = Annotated[User, Depends(require_roles(Role.admin))]
StaffUser = Annotated[User, Depends(require_roles(Role.admin, Role.researcher))]
RaterUser = Annotated[User, Depends(require_roles(Role.rater))]
AnyUser = Annotated[User, Depends(require_roles(Role.admin, Role.researcher, Role.rater))]
Csrf = Depends(verify_csrf)
