"""Domain errors raised by services; the edges translate them (JSON, click)."""
from __future__ import annotations


class DialerError(Exception):
    """Base of every error a person can act on. ``status`` is the HTTP status."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(DialerError):
    status = 400
    code = "invalid_input"


class NotFound(DialerError):
    status = 404
    code = "not_found"


class Unauthorized(DialerError):
    status = 401
    code = "unauthorized"


class Forbidden(DialerError):
    status = 403
    code = "forbidden"


class Conflict(DialerError):
    status = 409
    code = "conflict"
