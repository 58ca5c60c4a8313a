"""The session cookie: HttpOnly (no script can read it), SameSite=Lax, Secure over HTTPS.

Lax rather than Strict so that following an emailed link to radsal keeps the rater logged in;
cross-site form posts are still stopped by the CSRF token on every state-changing route.
"""

from __future__ import annotations

from fastapi import Request, Response

from app.auth.deps import SESSION_COOKIE
from app.config import Settings
from app.middleware import is_https


def set_session_cookie(
    request: Request, response: Response, token: str, settings: Settings
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=is_https(request, settings),
        path="/",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
