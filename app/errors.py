"""Domain errors. Services raise these; one handler (app.handlers) maps them to HTTP."""

from __future__ import annotations


class DomainError(Exception):
    """Base for errors a user can act on. `message` is shown to them verbatim."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, details: object | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Invalid(DomainError):
    status_code = 422
    code = "invalid"


class Unauthorized(DomainError):
    status_code = 401
    code = "unauthorized"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class TooLarge(DomainError):
    status_code = 413
    code = "too_large"


class UnsupportedMedia(DomainError):
    status_code = 415
    code = "unsupported_media_type"


class RateLimited(DomainError):
    status_code = 429
    code = "rate_limited"
