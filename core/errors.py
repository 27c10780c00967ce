"""Domain errors. Each app maps them to HTTP in its one error table."""

from __future__ import annotations


class AfftokError(Exception):
    code = "error"

    def __init__(self, code: str | None = None, message: str = ""):
        super().__init__(message or code or self.code)
        if code:
            self.code = code
        self.message = message or self.code


class ValidationError(AfftokError):
    code = "invalid_request"


class NotFound(AfftokError):
    code = "not_found"


class Conflict(AfftokError):
    code = "conflict"


class Unauthorized(AfftokError):
    code = "unauthorized"


class Forbidden(AfftokError):
    code = "forbidden"
