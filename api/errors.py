"""The one error table: every failure becomes ``{code, message, correlation_id}``.

Domain errors map by class; request-shape errors from msgspec are 400 (not JSON) or
422 (JSON of the wrong shape); routing misses are 404/405; anything else is a logged 500
whose body says no more than that.
"""

from __future__ import annotations

import logging

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from api.schemas import ErrorBody
from core.errors import AfftokError, Conflict, Forbidden, NotFound, Unauthorized, ValidationError
from core.plans import PlanLimitReached

log = logging.getLogger("afftok.api")


class MalformedBody(AfftokError):
    code = "malformed_json"


class BodyTooLarge(AfftokError):
    code = "body_too_large"


class PublishFailed(AfftokError):
    code = "publish_failed"


class RateLimited(AfftokError):
    """Over the credential's rate limit; ``headers`` carry Retry-After and RateLimit-*."""

    code = "rate_limited"

    def __init__(self, message: str, headers: dict[str, str]):
        super().__init__(message=message)
        self.headers = headers


STATUS_BY_ERROR: dict[type[AfftokError], int] = {
    MalformedBody: 400,
    Unauthorized: 401,
    PlanLimitReached: 402,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    BodyTooLarge: 413,
    ValidationError: 422,
    RateLimited: 429,
    PublishFailed: 503,
}
_HTTP_CODES = {404: ("not_found", "no such route"), 405: ("method_not_allowed", "method not allowed on this route")}
_encoder = msgspec.json.Encoder()


def _status_of(exc: AfftokError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


def _describe(exc: BaseException) -> tuple[int, str, str, dict[str, str]]:
    if isinstance(exc, AfftokError):
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else getattr(exc, "headers", {})
        return _status_of(exc), exc.code, exc.message, headers
    if isinstance(exc, msgspec.ValidationError):  # a subclass of DecodeError: test it first
        return 422, "invalid_request", str(exc), {}
    if isinstance(exc, msgspec.DecodeError):
        return 400, "malformed_json", f"request body is not valid JSON: {exc}", {}
    if isinstance(exc, HTTPException):
        code, message = _HTTP_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
        return exc.status_code, code, message, dict(exc.headers or {})
    return 500, "internal_error", "internal error; quote the correlation_id when reporting it", {}


def error_response(exc: BaseException, correlation_id: str) -> Response:
    status, code, message, headers = _describe(exc)
    if status >= 500:
        log.error("request failed [%s]", correlation_id, exc_info=exc)
    body = ErrorBody(code=code, message=message, correlation_id=correlation_id)
    return Response(_encoder.encode(body), status_code=status, headers=headers, media_type="application/json")


async def handle_error(request: Request, exc: Exception) -> Response:
    response = error_response(exc, request.state.correlation_id)
    response.headers.update(getattr(request.state, "rate_limit_headers", {}))  # set by api.app.secured
    return response


HANDLED = (AfftokError, msgspec.DecodeError, HTTPException)
