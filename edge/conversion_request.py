"""What ``/postback`` and the pixel read from a request, and how they answer.

Raw ASGI, like the click path: the headers are read in one pass (``RequestHeaders``),
the query string is decoded once (first value of each name), and a refusal is a
``Refused`` whose code is a row of ``edge.errors``' table.
"""

from __future__ import annotations

from urllib.parse import unquote_plus

from core.geo import client_ip, visitor_country


class Refused(Exception):
    """The request is refused with ``code`` (``edge.errors``); ``message`` and ``field``
    replace the table's message and name the offending field."""

    def __init__(self, code: str, message: str | None = None, field: str | None = None):
        super().__init__(code)
        self.code, self.message, self.field = code, message, field


def header_text(value: bytes | None, max_chars: int) -> str | None:
    if not value:
        return None
    return value.decode("utf-8", "replace")[:max_chars].replace("\x00", "") or None


def query_fields(query_string: bytes, limit: int) -> dict[str, str]:
    """The query's fields, first value of each name (``parse_qsl``'s decoding, without its
    per-pair overhead on the common case of nothing to unquote)."""
    if len(query_string) > limit:
        raise Refused("payload_too_large", f"the query string must be at most {limit} bytes")
    try:
        text = query_string.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("invalid_body", "the query string is not UTF-8") from None
    fields: dict[str, str] = {}
    for pair in text.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in pair or "+" in pair:
            try:
                name, value = unquote_plus(name, errors="strict"), unquote_plus(value, errors="strict")
            except UnicodeDecodeError:
                raise Refused("invalid_body", "the query string is not UTF-8") from None
        if name not in fields:
            fields[name] = value
    return fields


async def send_response(send, status: int, headers: list, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class RequestHeaders:
    """The headers a postback or pixel reads, in one pass."""

    __slots__ = ("content_type", "signature", "api_key", "request_id", "user_agent", "forwarded_for",
                 "country", "cookie", "content_length")

    def __init__(self, headers, country_header: bytes | None):
        self.content_type = self.signature = self.api_key = self.request_id = None
        self.user_agent = self.forwarded_for = self.country = self.cookie = self.content_length = None
        for name, value in headers:
            if name == b"content-type":
                self.content_type = value
            elif name == b"afftok-signature":
                self.signature = value
            elif name == b"authorization":
                scheme, _, credential = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    self.api_key = credential.strip()
            elif name == b"x-api-key":
                self.api_key = value.strip()
            elif name == b"x-request-id":
                self.request_id = value
            elif name == b"user-agent":
                self.user_agent = value
            elif name == b"x-forwarded-for" and self.forwarded_for is None:
                self.forwarded_for = value
            elif name == country_header:
                self.country = value
            elif name == b"cookie":
                self.cookie = value
            elif name == b"content-length":
                self.content_length = value

    def visitor(self, scope, trust_forwarded_for: bool) -> tuple[str | None, str | None]:
        """The sender's address and country (from the country header or the address)."""
        client = scope.get("client")
        ip = client_ip(client[0] if client else None, self.forwarded_for, trust_forwarded_for)
        return ip, visitor_country(self.country, ip)
