"""Jinja2 rendering shared by every HTML route (a template per view, partials prefixed `_`)."""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import BackgroundTasks, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from app.config import PROJECT_ROOT
from app.storage import Storage

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
    ("D", "magnifier (loupe) under the pointer, at full resolution, on / off"),
    ("G", "full screen"),
    ("?", "show / hide this help"),
)


def client_ip(request: Request) -> str:
    """The peer address (the proxy's, unless the server trusts forwarded headers)."""
    return request.client.host if request.client else ""


def delete_files_later(request: Request, tasks: BackgroundTasks, files: list[str]) -> None:
    """Remove a deleted image's, checkpoint's or draft's stored files after the response, when
    the transaction that deleted their rows has committed: a failure in between leaves stray
    files, never rows whose files are gone."""
    tasks.add_task(Storage(request.app.state.settings.data_dir).delete_all, files)


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


def etag_response(
    request: Request, data: bytes, *, media_type: str, cache: str, bound_to: str = ""
) -> Response:
    """A file's bytes with an ETag over `bound_to` (the URL's own parts, e.g. token and slot)
    and the bytes, and 304 when the browser already has them. Rater files bind the ETag to the
    URL, never to an arm, map or checkpoint, so it can't match across trials or tell arms apart."""
    digest = hashlib.sha256(bound_to.encode() + data).hexdigest()[:32]
    headers = {"ETag": f'"{digest}"', "Cache-Control": cache}
    if headers["ETag"] in {t.strip() for t in request.headers.get("if-none-match", "").split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(content=data, media_type=media_type, headers=headers)
