"""``/postback``: conversions reported server to server (the pixel is ``edge.pixel_handler``).

``/postback`` (GET or POST; fields in the query string, a form or a JSON object; body
fields win over query fields of the same name; a signed postback sends them all in the
body, see ``edge.postback_auth``):

1. Body at most ``settings.postback_body_max_bytes`` (413), a form or JSON (415), readable
   (400). Nothing is written before the answer says accepted.
2. Authenticated from memory (``edge.postback_auth``): token, signature or API key → 401.
3. Checked field by field (``core.postbacks``) → 422 naming the field.
4. Appended to the conversions stream with the click path's group commit and its own
   spool; the 202 ``{status: "accepted", correlation_id, postback_id}`` is sent only once
   the entry is in Redis or in the spool file.
"""

from __future__ import annotations

import logging
import time
from time import perf_counter
from urllib.parse import parse_qsl

import orjson

from core.errors import Unauthorized, ValidationError
from core.ids import new_click_id
from core.ip_privacy import truncate_ip
from core.models import PostbackRecord
from core.postbacks import parse_postback
from core.settings import Settings
from edge.committer import GroupCommitter
from edge.conversion_request import Refused, RequestHeaders, query_fields, send_response
from edge.errors import correlation_id, error_body
from edge.metrics import EdgeMetrics
from edge.postback_auth import PostbackAuthCache

log = logging.getLogger(__name__)

POSTBACK_PATH = "/postback"
_JSON = (b"content-type", b"application/json")
_NO_STORE = (b"cache-control", b"no-store")


def _first_values(pairs: list[tuple[str, str]]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for name, value in pairs:
        fields.setdefault(name, value)
    return fields


async def _read_body(receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refused("invalid_body", "the client went away before the body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refused("payload_too_large", f"the body must be at most {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _body_fields(content_type: bytes | None, body: bytes) -> dict:
    if not body.strip():
        return {}
    kind = (content_type or b"").split(b";", 1)[0].strip().lower()
    if kind == b"application/json":
        try:
            fields = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise Refused("invalid_body", "the body is not valid JSON") from None
        if not isinstance(fields, dict):
            raise Refused("invalid_body", "the JSON body must be an object")
        return fields
    if kind == b"application/x-www-form-urlencoded":
        try:
            return _first_values(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError:
            raise Refused("invalid_body", "the form is not UTF-8") from None
    raise Refused("unsupported_media_type")



def make_postback_handler(settings: Settings, auth: PostbackAuthCache, committer: GroupCommitter, metrics: EdgeMetrics):
    """The ASGI handler for ``/postback``."""
    body_limit = settings.postback_body_max_bytes
    query_limit = settings.query_max_bytes
    country_header = settings.country_header.strip().lower().encode("latin-1") or None

    async def handle_postback(scope, receive, send) -> None:
        started = perf_counter()
        request = RequestHeaders(scope["headers"], country_header)
        correlation = correlation_id(request.request_id)
        try:
            if scope["method"] not in ("GET", "POST"):
                raise Refused("method_not_allowed")
            query = query_fields(scope["query_string"], query_limit)
            body = b""
            if scope["method"] == "POST":
                if request.content_length is not None and request.content_length.isdigit() \
                        and int(request.content_length) > body_limit:
                    raise Refused("payload_too_large", f"the body must be at most {body_limit} bytes")
                body = await _read_body(receive, body_limit)
            fields = {**query, **_body_fields(request.content_type, body)}
            now_ms = time.time_ns() // 1_000_000
            advertiser_id = fields.get("advertiser_id")
            try:
                sender = auth.authenticate(
                    token=query.get("token") or None,
                    signature=request.signature.decode("latin-1") if request.signature else None,
                    api_key=request.api_key.decode("latin-1") if request.api_key else None,
                    advertiser_id=advertiser_id if isinstance(advertiser_id, str) else None,
                    body=body, now_ms=now_ms, unsigned_fields=query,
                )
            except Unauthorized as exc:
                log.info("postback refused (%s): %s", exc.code, exc.message)
                raise Refused("unauthorized") from None
            try:
                checked = parse_postback(fields)
            except ValidationError as exc:
                raise Refused("invalid_postback", exc.message, getattr(exc, "field", None)) from None
        except Refused as refused:
            status, payload = error_body(refused.code, None, message=refused.message, field=refused.field,
                                         correlation=correlation)
            await send_response(send, status, [_JSON, _NO_STORE], payload)
            metrics.observe_postback(refused.code, perf_counter() - started)
            return

        postback_id = new_click_id(now_ms)
        await committer.append(PostbackRecord(
            postback_id, now_ms, sender.org_id, sender.advertiser_id, "postback", sender.actor,
            checked.click_id, checked.external_id, checked.status, checked.amount_minor, checked.currency,
            checked.goal, checked.product_id, checked.order_id, checked.customer_id, checked.metadata,
            truncate_ip(checked.ip) if sender.ip_truncate else checked.ip, None, checked.country, correlation,
        ))
        payload = orjson.dumps({"status": "accepted", "correlation_id": correlation, "postback_id": postback_id})
        await send_response(send, 202, [_JSON, _NO_STORE], payload)
        metrics.observe_postback("accepted", perf_counter() - started)

    return handle_postback
