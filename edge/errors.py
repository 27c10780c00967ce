"""The edge's one error table: error code -> HTTP status and message, as JSON bodies.

Every error the edge returns is ``{"code", "message", "correlation_id"}``. The
correlation id is the request's ``X-Request-Id`` when that is a sane token, else a new
random one; it is only ever written into the JSON body, never into a header.
"""

from __future__ import annotations

import re
import uuid

import orjson

ERRORS: dict[str, tuple[int, str]] = {
    "not_found": (404, "Nothing here."),
    "link_unavailable": (404, "This link is not available right now."),
    "method_not_allowed": (405, "Method not allowed."),
    "unauthorized": (401, "Missing or invalid postback credentials: a token, a signature or an API key."),
    "invalid_body": (400, "The body could not be read as JSON or as a form."),
    "payload_too_large": (413, "The request is too large."),
    "unsupported_media_type": (415, "Send a query string, a form (application/x-www-form-urlencoded) or JSON."),
    "invalid_postback": (422, "The postback is not valid."),
    "internal_error": (500, "Something went wrong on our side."),
}
STATUS_CODES = {404: "not_found", 405: "method_not_allowed"}
_REQUEST_ID_RE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def correlation_id(request_id: bytes | None) -> str:
    if request_id is not None and _REQUEST_ID_RE.fullmatch(request_id):
        return request_id.decode("ascii")
    return uuid.uuid4().hex


def error_body(
    code: str, request_id: bytes | None, *, message: str | None = None, field: str | None = None,
    correlation: str | None = None,
) -> tuple[int, bytes]:
    """The status and JSON body for ``code`` (an unknown code is an internal error);
    ``message`` replaces the table's (a validation message naming ``field``)."""
    status, default = ERRORS.get(code) or ERRORS["internal_error"]
    body = {"code": code if code in ERRORS else "internal_error", "message": message or default,
            "correlation_id": correlation or correlation_id(request_id)}
    if field:
        body["field"] = field
    return status, orjson.dumps(body)


def code_for_status(status: int) -> str:
    return STATUS_CODES.get(status, "internal_error" if status >= 500 else "not_found")
