"""``/pixel.gif`` and ``/pixel.js``: conversions reported by the visitor's browser.

``/pixel.gif`` records a browser conversion for the advertiser named by
``advertiser_id`` (public, no secret: it must be an active advertiser in the auth
cache, whose organization the record takes). The click id is the ``click_id``
parameter or else the redirect's cookie; the address, user agent and country are the
browser's (the address truncated when the organization stores it so). Nothing in a
page is a credential, so the status is always ``pending`` and the actor ``pixel``: a
server postback with the same ``external_id`` or an operator approves it. It always
answers the 1×1 GIF (no-store), even when it records nothing, so a page never shows a
broken image; what it did is counted in ``afftok_pixels`` by outcome. ``/pixel.js`` is
a small cacheable script that requests it.
"""

from __future__ import annotations

import logging
import time
from http.cookies import SimpleCookie

from core.errors import ValidationError
from core.ids import new_click_id
from core.ip_privacy import truncate_ip
from core.models import PENDING, PostbackRecord
from core.postbacks import parse_postback
from core.settings import Settings
from edge.committer import GroupCommitter
from edge.conversion_request import Refused, RequestHeaders, header_text, query_fields, send_response
from edge.errors import correlation_id
from edge.metrics import EdgeMetrics
from edge.postback_auth import PostbackAuthCache

log = logging.getLogger(__name__)

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
_NO_STORE = (b"cache-control", b"no-store")


def make_pixel_handler(settings: Settings, auth: PostbackAuthCache, committer: GroupCommitter, metrics: EdgeMetrics):
    """The ASGI handler for ``/pixel.gif`` and ``/pixel.js``."""
    query_limit = settings.query_max_bytes
    country_header = settings.country_header.strip().lower().encode("latin-1") or None
    trust_forwarded_for = settings.trust_forwarded_for
    cookie_name = settings.cookie_name

    async def handle_pixel(scope, receive, send) -> None:
        if scope["path"] == PIXEL_JS_PATH:
            await send_response(send, 200, [(b"content-type", b"application/javascript; charset=utf-8"),
                                            (b"cache-control", b"public, max-age=3600")], _PIXEL_JS)
            return
        outcome = "accepted"
        try:
            outcome = await _record_pixel(scope)
        except Exception:
            log.exception("pixel failed; answering the image anyway")
            outcome = "error"
        await send_response(send, 200, [(b"content-type", b"image/gif"), _NO_STORE], _GIF)
        metrics.observe_pixel(outcome)

    async def _record_pixel(scope) -> str:
        if scope["method"] != "GET":  # a HEAD (prefetchers, link checkers) has no side effects
            return "method_not_allowed"
        request = RequestHeaders(scope["headers"], country_header)
        try:
            fields = query_fields(scope["query_string"], query_limit)
        except Refused as refused:
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
        ip, country = request.visitor(scope, trust_forwarded_for)
        if advertiser.ip_truncate:
            ip = truncate_ip(ip)
        now_ms = time.time_ns() // 1_000_000
        await committer.append(PostbackRecord(
            new_click_id(now_ms), now_ms, advertiser.org_id, advertiser.advertiser_id, "pixel", "pixel",
            click_id[:100], checked.external_id, PENDING, checked.amount_minor, checked.currency,
            checked.goal, checked.product_id, checked.order_id, checked.customer_id, checked.metadata,
            ip, header_text(request.user_agent, USER_AGENT_MAX_CHARS), country, correlation_id(request.request_id),
        ))
        return "accepted"

    return handle_pixel
