"""Cross-cutting HTTP behaviour: security headers, request body limit, anonymous CSRF cookie."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.auth.tokens import new_token
from app.config import Settings

CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
# One year; browsers ignore the header on plain HTTP, so it only ever pins a site that was
# reached over TLS.
HSTS = "max-age=31536000; includeSubDomains"


def is_https(request: Request, settings: Settings) -> bool:
    """Whether the browser reached us over TLS, for the cookies' `Secure` flag.

    `X-Forwarded-Proto` is honoured here even without RADSAL_TRUST_PROXY: a forged header can
    only make a cookie *stricter* (Secure), which harms nobody but the forger.
    """
    if settings.secure_cookies == "always":
        return True
    if settings.secure_cookies == "never":
        return False
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto == "https"


def sends_hsts(request: Request, settings: Settings) -> bool:
    """Whether this response may pin HTTPS in the browser (Strict-Transport-Security).

    Trust is explicit: the connection itself was TLS (uvicorn also rewrites the scheme from a
    proxy listed in `--forwarded-allow-ips`), or cookies are `always` Secure (the operator says
    the site is HTTPS-only), or RADSAL_TRUST_PROXY says a proxy in front terminates TLS and
    overwrites `X-Forwarded-Proto`. A bare header from an untrusted client is not believed.
    """
    if settings.secure_cookies == "never":
        return False
    if settings.secure_cookies == "always" or request.url.scheme == "https":
        return True
    return settings.trust_proxy and request.headers.get("x-forwarded-proto") == "https"


def apply_security_headers(headers: MutableHeaders, request: Request, settings: Settings) -> None:
    """The headers every response carries, pages, JSON, files and errors (500s too)."""
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "no-referrer")
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if "cache-control" not in headers:
        # Static assets (CSS, JS, fonts) hold nothing private: the browser keeps them and asks
        # with their ETag (a 304 costs no body), which takes re-downloading every script off
        # each trial page load. Everything else is never stored.
        static = request.url.path.startswith("/static/")
        headers["Cache-Control"] = "no-cache" if static else "no-store"
    if sends_hsts(request, settings):
        headers.setdefault("Strict-Transport-Security", HSTS)


class _BodyTooLarge(Exception):
    """Raised inside `receive` once the request body passes the limit."""


@dataclass
class _Progress:
    received: int = 0
    exceeded: bool = False
    started: bool = False


class BodyLimit:
    """Pure ASGI middleware: a request body over the limit gets 413 as soon as it is known.

    With `Content-Length` that is before a byte of the body is read. A chunked body (no
    length) is counted as it arrives; the chunk that crosses the limit aborts whatever is
    reading it (the multipart parser spooling to disk), the app's own reply to the broken body
    is dropped and the 413 goes out instead. Either way the route never runs, so nothing is
    stored and the server holds at most one chunk of the excess.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, limit_mb: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.limit_mb = limit_mb

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(send)
            return
        state = _Progress()

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state.received += len(message.get("body", b""))
                if state.received > self.max_bytes:
                    state.exceeded = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if state.exceeded:
                return  # the app's answer to a body we cut off; the 413 replaces it
            if message["type"] == "http.response.start":
                state.started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state.exceeded:
                raise
        if state.exceeded and not state.started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "detail": f"Upload too large: the limit is {self.limit_mb} MiB.",
                "code": "too_large",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def install_middleware(app: FastAPI, settings: Settings) -> None:
    # Added first, so it sits inside the header middleware below: its 413 gets the headers too.
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_upload_mb * 1024 * 1024, limit_mb=settings.max_upload_mb
    )

    @app.middleware("http")
    async def _security(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
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
        apply_security_headers(response.headers, request, settings)
        return response


# Path segments that are bearer credentials: whoever reads the access log must not be able to
# use them. `/invite/<token>` is a single-use link that logs a rater in.
_SECRET_PATHS = re.compile(r"(/invite/)[^/?#\s\"]+")
REDACTED = "[redacted]"


def redact_secrets(text: str) -> str:
    """``text`` with every invite token in a URL path replaced by ``[redacted]``."""
    return _SECRET_PATHS.sub(r"\1" + REDACTED, text)


class RedactTokens(logging.Filter):
    """Logging filter: rewrites invite tokens in a record's message and string arguments.

    Installed on uvicorn's access logger (whose arguments carry the request path) and on the
    app's own logger (an error on `/invite/<token>` logs the path).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_secrets(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_secrets(a) if isinstance(a, str) else a for a in record.args)
        return True


LOGGERS_WITH_PATHS = ("uvicorn.access", "uvicorn.error", "radsal")


def install_log_redaction() -> None:
    """Attach :class:`RedactTokens` once to every logger that writes request paths."""
    for name in LOGGERS_WITH_PATHS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
