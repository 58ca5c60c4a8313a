"""Jinja2 rendering shared by every HTML route (a template per view, partials prefixed `_`)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.config import PROJECT_ROOT

templates = Jinja2Templates(directory=str(PROJECT_ROOT / "templates"))
templates.env.autoescape = True  # every template, whatever its extension


def csrf_token_for(request: Request) -> str:
    """The CSRF token to embed in forms: the session's, or the anonymous cookie's."""
    session = getattr(request.state, "auth_session", None)
    if session is not None:
        return str(session.csrf_token)
    return str(getattr(request.state, "anon_csrf", "") or request.cookies.get("radsal_csrf", ""))


def render(
    request: Request,
    name: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    ctx: dict[str, Any] = {
        "current_user": getattr(request.state, "user", None),
        "csrf_token": csrf_token_for(request),
    }
    ctx.update(context or {})
    return templates.TemplateResponse(request, name, ctx, status_code=status_code, headers=headers)
