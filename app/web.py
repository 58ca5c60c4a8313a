"""Jinja2 rendering shared by every HTML route (a template per view, partials prefixed `_`)."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app.config import PROJECT_ROOT

templates = Jinja2Templates(directory=str(PROJECT_ROOT / "templates"))
templates.env.autoescape = True  # every template, whatever its extension


# The rater's key help: shown on the rater page and on the staff preview (the same view).
HOTKEYS: tuple[tuple[str, str], ...] = (
    ("A / B", "choose the map you are scoring"),
    ("1 – 5", "score the chosen map (moves on to the next one)"),
    ("Z / ←", "prefer Map A"),
    ("X / ↓", "no preference"),
    ("C / →", "prefer Map B"),
    ("M", "write a comment (Esc leaves the box)"),
    ("Enter", "save and go to the next trial"),
    ("P / N", "previous / next trial (when the study allows going back)"),
    ("+ / − / 0", "zoom in / out / reset view (also mouse wheel, double-click)"),
    ("drag · right-drag", "pan · window/level"),
    ("W", "window/level tool for the left button"),
    ("L", "next window/level preset"),
    ("O", "overlay on / off"),
    ("[ / ]", "overlay opacity down / up"),
    ("I", "show / hide the plain image"),
    ("F", "full resolution (1 image pixel = 1 screen pixel)"),
    ("V · S", "one viewport flicking between Map A and Map B · side by side again"),
    ("T", "show only the top 10 % of each map / all of it"),
    ("G", "full screen"),
    ("?", "show / hide this help"),
)


def client_ip(request: Request) -> str:
    """The peer address (the proxy's, unless the server trusts forwarded headers)."""
    return request.client.host if request.client else ""


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
