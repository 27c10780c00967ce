"""Conversions into the edge: ``/postback`` (server to server) and ``/pixel.gif`` / ``/pixel.js``.

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

``/pixel.gif`` records a browser conversion for the advertiser named by
``advertiser_id``: the click id comes from the redirect's cookie (or ``click_id``), the
address, user agent and country from the browser, and the status is always ``pending``
(nothing in a page is a credential; a server postback or an operator approves it). It
always answers the 1×1 GIF, so a page never shows a broken image; what it did is in the
``afftok_pixels`` counter. ``/pixel.js`` is a small cacheable script that requests it.
"""

from __future__ import annotations

import logging
import time
from http.cookies import SimpleCookie
from time import perf_counter
from urllib.parse import parse_qsl, unquote_plus

import orjson

from core.errors import Unauthorized, ValidationError
from core.geo import client_ip, visitor_country
from core.ids import new_click_id
from core.ip_privacy import truncate_ip
from core.models import PENDING, PostbackRecord
from core.postbacks import parse_postback
from core.settings import Settings
from edge.committer import GroupCommitter
from edge.errors import correlation_id, error_body
from edge.metrics import EdgeMetrics
from edge.postback_auth import PostbackAuthCache

log = logging.getLogger(__name__)

POSTBACK_PATH = "/postback"
PIXEL_GIF_PATH = "/pixel.gif"
PIXEL_JS_PATH = "/pixel.js"
USER_AGENT_MAX_CHARS = 1024

_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
        b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
# Either attributes on the tag (sent on load when data-external-id is there):
#   <script async src="https://<edge>/pixel.js" data-advertiser-id="…" data-external-id="…"
#           data-amount="…" data-currency="…" data-goal="…"></script>
# or calls, queued until the script is in (data-advertiser-id is the default advertiser):
#   window.afftok = window.afftok || function () { (afftok.q = afftok.q || []).push(arguments); };
#   afftok("conversion", {advertiser_id: "…", external_id: "…", amount: "9.99", currency: "EUR"});
_PIXEL_JS = rb"""(function (w, d) {
  var s = d.currentScript; if (!s) return;
  var base = s.src.replace(/\/pixel\.js(\?.*)?$/, "/pixel.gif"), tag = {};
  ["advertiser-id", "external-id", "amount", "currency", "goal", "product-id", "order-id", "customer-id",
   "click-id"].forEach(function (n) { var v = s.getAttribute("data-" + n); if (v) tag[n.replace(/-/g, "_")] = v; });
  function send(p) {
    var q = [], k, v, all = {advertiser_id: tag.advertiser_id};
    for (k in p) all[k] = p[k];
    for (k in all) {
      v = all[k];
      if (v != null && v !== "") q.push(encodeURIComponent(k) + "=" + encodeURIComponent(typeof v == "object" ? JSON.stringify(v) : v));
    }
    new Image(1, 1).src = base + "?" + q.join("&") + "&r=" + Date.now();
  }
  var queued = (w.afftok && w.afftok.q) || [];
  w.afftok = function (command, params) { if (command == "conversion") send(params || {}); };
  for (var i = 0; i < queued.length; i++) w.afftok.apply(null, queued[i]);
  if (tag.external_id) send(tag);
})(window, document);
"""
_JSON = (b"content-type", b"application/json")
_NO_STORE = (b"cache-control", b"no-store")


class _Refused(Exception):
    def __init__(self, code: str, message: str | None = None, field: str | None = None):
        super().__init__(code)
        self.code, self.message, self.field = code, message, field


def _text(value: bytes | None, max_chars: int) -> str | None:
    if not value:
        return None
    return value.decode("utf-8", "replace")[:max_chars].replace("\x00", "") or None


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
            raise _Refused("invalid_body", "the client went away before the body was complete")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _Refused("payload_too_large", f"the body must be at most {limit} bytes")
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
            raise _Refused("invalid_body", "the body is not valid JSON") from None
        if not isinstance(fields, dict):
            raise _Refused("invalid_body", "the JSON body must be an object")
        return fields
    if kind == b"application/x-www-form-urlencoded":
        try:
            return _first_values(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
        except UnicodeDecodeError:
            raise _Refused("invalid_body", "the form is not UTF-8") from None
    raise _Refused("unsupported_media_type")


def _query_fields(query_string: bytes, limit: int) -> dict[str, str]:
    """The query's fields, first value of each name (``parse_qsl``'s decoding, without its
    per-pair overhead on the common case of nothing to unquote)."""
    if len(query_string) > limit:
        raise _Refused("payload_too_large", f"the query string must be at most {limit} bytes")
    try:
        text = query_string.decode("utf-8")
    except UnicodeDecodeError:
        raise _Refused("invalid_body", "the query string is not UTF-8") from None
    fields: dict[str, str] = {}
    for pair in text.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        if "%" in pair or "+" in pair:
            try:
                name, value = unquote_plus(name, errors="strict"), unquote_plus(value, errors="strict")
            except UnicodeDecodeError:
                raise _Refused("invalid_body", "the query string is not UTF-8") from None
        if name not in fields:
            fields[name] = value
    return fields


async def _send(send, status: int, headers: list, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _Request:
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


def make_postback_handlers(
    settings: Settings, auth: PostbackAuthCache, committer: GroupCommitter, metrics: EdgeMetrics,
):
    """The ASGI handlers for ``/postback`` and for the pixel paths."""
    body_limit = settings.postback_body_max_bytes
    query_limit = settings.query_max_bytes
    country_header = settings.country_header.strip().lower().encode("latin-1") or None
    trust_forwarded_for = settings.trust_forwarded_for
    cookie_name = settings.cookie_name

    def visitor(scope, request: _Request) -> tuple[str | None, str | None]:
        client = scope.get("client")
        ip = client_ip(client[0] if client else None, request.forwarded_for, trust_forwarded_for)
        return ip, visitor_country(request.country, ip)

    async def handle_postback(scope, receive, send) -> None:
        started = perf_counter()
        request = _Request(scope["headers"], country_header)
        correlation = correlation_id(request.request_id)
        try:
            if scope["method"] not in ("GET", "POST"):
                raise _Refused("method_not_allowed")
            query = _query_fields(scope["query_string"], query_limit)
            body = b""
            if scope["method"] == "POST":
                if request.content_length is not None and request.content_length.isdigit() \
                        and int(request.content_length) > body_limit:
                    raise _Refused("payload_too_large", f"the body must be at most {body_limit} bytes")
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
                raise _Refused("unauthorized") from None
            try:
                checked = parse_postback(fields)
            except ValidationError as exc:
                raise _Refused("invalid_postback", exc.message, getattr(exc, "field", None)) from None
        except _Refused as refused:
            status, payload = error_body(refused.code, None, message=refused.message, field=refused.field,
                                         correlation=correlation)
            await _send(send, status, [_JSON, _NO_STORE], payload)
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
        await _send(send, 202, [_JSON, _NO_STORE], payload)
        metrics.observe_postback("accepted", perf_counter() - started)

    async def handle_pixel(scope, receive, send) -> None:
        if scope["path"] == PIXEL_JS_PATH:
            await _send(send, 200, [(b"content-type", b"application/javascript; charset=utf-8"),
                                    (b"cache-control", b"public, max-age=3600")], _PIXEL_JS)
            return
        outcome = "accepted"
        try:
            outcome = await _record_pixel(scope)
        except Exception:
            log.exception("pixel failed; answering the image anyway")
            outcome = "error"
        await _send(send, 200, [(b"content-type", b"image/gif"), _NO_STORE], _GIF)
        metrics.observe_pixel(outcome)

    async def _record_pixel(scope) -> str:
        if scope["method"] not in ("GET", "HEAD"):
            return "method_not_allowed"
        request = _Request(scope["headers"], country_header)
        try:
            fields = _query_fields(scope["query_string"], query_limit)
        except _Refused as refused:
            return refused.code
        advertiser = auth.advertiser(fields.get("advertiser_id"))
        if advertiser is None:
            return "unknown_advertiser"
        try:
            checked = parse_postback(fields, click_optional=True)
        except ValidationError:
            return "invalid_postback"
        click_id = checked.click_id
        if click_id is None and request.cookie:
            morsel = SimpleCookie(request.cookie.decode("latin-1")).get(cookie_name)
            click_id = morsel.value if morsel else None
        if not click_id:
            return "no_click_id"
        ip, country = visitor(scope, request)
        if advertiser.ip_truncate:
            ip = truncate_ip(ip)
        now_ms = time.time_ns() // 1_000_000
        await committer.append(PostbackRecord(
            new_click_id(now_ms), now_ms, advertiser.org_id, advertiser.advertiser_id, "pixel", "pixel",
            click_id[:100], checked.external_id, PENDING, checked.amount_minor, checked.currency,
            checked.goal, checked.product_id, checked.order_id, checked.customer_id, checked.metadata,
            ip, _text(request.user_agent, USER_AGENT_MAX_CHARS), country, correlation_id(request.request_id),
        ))
        return "accepted"

    return handle_postback, handle_pixel
