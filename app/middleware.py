"""Cross-cutting HTTP behaviour: security headers, upload size limit, anonymous CSRF cookie."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from app.auth.tokens import new_token
from app.config import Settings

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)


def is_https(request: Request, settings: Settings) -> bool:
    if settings.secure_cookies == "always":
        return True
    if settings.secure_cookies == "never":
        return False
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto == "https"


def install_middleware(app: FastAPI, settings: Settings) -> None:
    max_bytes = settings.max_upload_mb * 1024 * 1024

    @app.middleware("http")
    async def _security(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_bytes:
            return JSONResponse(
                {
                    "detail": f"Upload too large: the limit is {settings.max_upload_mb} MiB.",
                    "code": "too_large",
                },
                status_code=413,
            )
        anon_csrf = request.cookies.get("radsal_csrf")
        if not anon_csrf:
            anon_csrf = new_token(24)
            request.state.anon_csrf = anon_csrf
        response = await call_next(request)
        if not request.cookies.get("radsal_csrf"):
            response.set_cookie(
                "radsal_csrf",
                anon_csrf,
                httponly=True,
                samesite="strict",
                secure=is_https(request, settings),
                path="/",
            )
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if "cache-control" not in headers:
            headers["Cache-Control"] = "no-store"
        return response
