"""``GET /c/{token}``: record the click, then redirect. A raw ASGI handler, the hot path.

Per click: one dict lookup for the link, one pass over the request headers, the
visitor's country and device (cached), the decision (``core.click_decision``), a click
id, one append to the group commit (awaited: the click is in Redis or the spool
before the 302 leaves), and pre-encoded response headers. Only the expanded
``Location`` (macro values percent-encoded, scheme and host fixed by the template) and
the hex click id go into headers; nothing from the request is copied raw.
Errors on the way degrade (no country, no device) rather than cost the redirect.
For organizations that store addresses truncated, the address is truncated here, the
first place it exists, so the full one never reaches Redis, the spool or Postgres.
"""

from __future__ import annotations

import logging
import re
import time
from time import perf_counter

from core.click_decision import decide_click
from core.click_query import EMPTY_QUERY, parse_click_query
from core.devices import device_type
from core.geo import client_ip, visitor_country
from core.ids import new_click_id
from core.ip_privacy import truncate_ip
from core.models import REDIRECT, UNAVAILABLE, ClickRecord
from core.settings import Settings
from edge.committer import GroupCommitter
from edge.config_cache import ConfigCache
from edge.errors import error_body
from edge.metrics import EdgeMetrics

log = logging.getLogger(__name__)

CLICK_PATH_PREFIX = "/c/"
USER_AGENT_MAX_CHARS = 1024
REFERER_MAX_CHARS = 2048
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_COOKIE_NAME_RE = re.compile(r"[A-Za-z0-9!#$&'*+.^_`|~-]{1,64}")
_EMPTY_BODY = {"type": "http.response.body", "body": b""}
_NO_STORE = (b"cache-control", b"no-store")
_NO_LENGTH = (b"content-length", b"0")


def _header_text(value: bytes | None, max_chars: int) -> str | None:
    if not value:
        return None
    text = value.decode("utf-8", "replace")[:max_chars]
    return text.replace("\x00", "") if "\x00" in text else text


async def send_error(send, code: str, headers) -> None:
    request_id = next((v for k, v in headers if k == b"x-request-id"), None)
    status, body = error_body(code, request_id)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), _NO_STORE, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def make_click_handler(settings: Settings, cache: ConfigCache, committer: GroupCommitter, metrics: EdgeMetrics):
    if not _COOKIE_NAME_RE.fullmatch(settings.cookie_name):
        raise ValueError(f"cookie_name {settings.cookie_name!r} is not a valid cookie name")
    entries_get = cache.entries.get
    country_header = settings.country_header.strip().lower().encode("latin-1") or None
    trust_forwarded_for = settings.trust_forwarded_for
    query_max_bytes = settings.query_max_bytes
    cookie_prefix = f"{settings.cookie_name}=".encode()
    # Over https the cookie is SameSite=None; Secure, so the conversion pixel on the
    # advertiser's site (a third-party request) still carries it; over plain http
    # browsers refuse SameSite=None without Secure, so it stays Lax.
    cookie_suffix = f"; Max-Age={settings.cookie_max_age_s}; Path=/; HttpOnly; SameSite=Lax".encode()
    cookie_suffix_secure = f"; Max-Age={settings.cookie_max_age_s}; Path=/; HttpOnly; SameSite=None; Secure".encode()
    public_https = (settings.public_edge_url or "").startswith("https://")  # TLS ends at a proxy
    observe_click = metrics.observe_click
    append = committer.append

    async def handle_click(scope, receive, send) -> None:
        started = perf_counter()
        headers = scope["headers"]
        if scope["method"] not in ("GET", "HEAD"):
            return await send_error(send, "method_not_allowed", headers)
        token = scope["path"][3:]
        entry = entries_get(token)
        if entry is None:
            if _TOKEN_RE.fullmatch(token):
                entry = await cache.fetch_missing(token)
            if entry is None:
                return await send_error(send, "not_found", headers)

        user_agent = referer = country_value = forwarded_for = None
        for name, value in headers:
            if name == b"user-agent":
                user_agent = value
            elif name == b"referer":
                referer = value
            elif name == country_header:
                country_value = value
            elif name == b"x-forwarded-for" and forwarded_for is None:
                forwarded_for = value
        ip = country = device = None
        query = EMPTY_QUERY
        try:
            client = scope.get("client")
            ip = client_ip(client[0] if client else None, forwarded_for, trust_forwarded_for)
            country = visitor_country(country_value, ip)
            user_agent = _header_text(user_agent, USER_AGENT_MAX_CHARS)
            referer = _header_text(referer, REFERER_MAX_CHARS)
            device = device_type(user_agent)
            query = parse_click_query(scope["query_string"], query_max_bytes)
        except Exception:
            log.exception("click enrichment failed; recording the click without it")
            user_agent = referer = None

        config = entry.config
        if config.ip_truncate:  # after the country lookup, before anything is recorded
            ip = truncate_ip(ip)
        now_ms = time.time_ns() // 1_000_000
        outcome = decide_click(entry.rules, country, now_ms)
        click_id = new_click_id(now_ms)
        await append(ClickRecord(
            click_id, now_ms, config.org_id, config.offer_id, config.affiliate_id, config.link_id, outcome,
            *query, ip, user_agent, referer, country, device,
        ))
        if outcome == UNAVAILABLE:
            await send_error(send, "link_unavailable", headers)
        else:
            template = entry.destination if outcome == REDIRECT else entry.fallback
            location = template.expand({
                "click_id": click_id, "offer_id": config.offer_id, "affiliate_id": config.affiliate_id,
                "sub1": query[0], "sub2": query[1], "sub3": query[2], "sub4": query[3], "sub5": query[4],
                "source_id": query[5], "country": country,
            })
            cookie = cookie_prefix + click_id.encode() + (cookie_suffix_secure if public_https or scope.get("scheme") == "https" else cookie_suffix)
            await send({"type": "http.response.start", "status": 302, "headers": [
                (b"location", location.encode("ascii")), _NO_STORE, (b"set-cookie", cookie), _NO_LENGTH]})
            await send(_EMPTY_BODY)
        observe_click(outcome, perf_counter() - started)

    return handle_click
