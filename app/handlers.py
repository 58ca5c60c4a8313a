"""The one place that turns errors into HTTP responses: JSON under /api, pages elsewhere."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import DomainError, Unauthorized
from app.middleware import apply_security_headers
from app.web import render

log = logging.getLogger("radsal")


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get(
        "accept", ""
    )


def _json_error(status: int, code: str, message: str, details: object | None) -> JSONResponse:
    body: dict[str, object] = {"detail": message, "code": code}
    if details is not None:
        body["errors"] = details
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


def error_json(exc: DomainError) -> JSONResponse:
    """The JSON error shape, for routes that must commit an audit event on refusal."""
    return _json_error(exc.status_code, exc.code, exc.message, exc.details)


def _error_response(
    request: Request, status: int, code: str, message: str, details: object | None = None
) -> Response:
    if wants_json(request):
        return _json_error(status, code, message, details)
    if status == 401 and request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
    return render(
        request,
        "errors/error.html",
        {"status": status, "message": message, "details": details},
        status_code=status,
    )


class ErrorItem(BaseModel):
    loc: list[str]
    msg: str


class ErrorBody(BaseModel):
    """Every JSON error: the message for a person, a stable code, and on some refusals
    `errors`: the per-field list of a 422 from request validation, or a domain error's
    details (e.g. the per-file report of a refused upload)."""

    detail: str
    code: str
    errors: list[ErrorItem] | dict[str, Any] | None = None


def document_error_shape(app: FastAPI) -> None:
    """Publish the real 422 body in /openapi.json.

    FastAPI declares every 422 as its own `HTTPValidationError` (`detail` a list), but our
    handler answers with :class:`ErrorBody`; clients and the schema fuzzer trust the document,
    so the component is replaced by the shape that is actually sent.
    """
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = build()
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(body.pop("$defs", {}))
        schemas["HTTPValidationError"] = body
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> Response:
        return _error_response(request, exc.status_code, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        details = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        return _error_response(request, 422, "invalid", "The request is not valid.", details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "Request failed."
        if exc.status_code == 404:
            message = "Not found."
        return _error_response(request, exc.status_code, "http_error", message)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        response = _error_response(request, 500, "internal", "Something went wrong on our side.")
        # A 500 is answered by Starlette's outermost middleware, outside ours: add the headers
        # here, or an error page would go out without CSP, nosniff and no-store.
        apply_security_headers(response.headers, request, request.app.state.settings)
        return response


__all__ = [
    "ErrorBody",
    "Unauthorized",
    "document_error_shape",
    "error_json",
    "install_error_handlers",
    "wants_json",
]
