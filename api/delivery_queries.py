"""Reads of outbound endpoints and deliveries for the API, scoped like their writes.

An affiliate key reads its own endpoints and their deliveries, never the organization's
own webhooks' (their events may be about every affiliate) nor another affiliate's; every
other role with the action reads the whole organization's. The scope is in the SQL (the
explicit ``org_id`` first, row-level security the backstop), so an id outside it reads
exactly like a missing one.

Lists are newest first by ``(created_at, id)``, paged by the same opaque cursor as every
list (``api.queries.fetch_page``).
"""

from __future__ import annotations

import uuid

import asyncpg
import msgspec

from api.delivery_schemas import (
    DeliveryAttemptView, DeliveryDetail, DeliveryPage, DeliveryQuery, DeliveryView, EndpointPage,
)
from api.queries import fetch_one, fetch_page, scoped_by
from api.schemas import PageQuery
from core.permissions import Scope
from core.store import delivery_endpoints as endpoints

# A held delivery's next_attempt_at is HELD, shown as null. asyncpg writes datetime.max
# (HELD) as 'infinity', and reads 'infinity' back as a naive datetime.max.
DELIVERY_COLUMNS = (
    "id, org_id, endpoint_id, event_id, event_type, status, attempts as attempt_count, event_created_at, created_at,"
    " nullif(next_attempt_at, 'infinity') as next_attempt_at, retry_until, last_attempt_at,"
    " last_status_code, last_error, delivered_at, dead_at"
)
_DETAIL_COLUMNS = (
    f"{DELIVERY_COLUMNS}, body,"
    " (select e.kind from delivery_endpoints e where e.id = deliveries.endpoint_id) as kind,"
    " (select e.url from delivery_endpoints e where e.id = deliveries.endpoint_id) as url"
)
ATTEMPT_COLUMNS = "attempt, started_at, latency_ms, status_code, error, response_excerpt, url"
# What an affiliate key sees ("{0}" is its affiliate id).
_ENDPOINT_SCOPE = {"affiliate_id": "affiliate_id = {0}"}
_DELIVERY_SCOPE = {"affiliate_id": "endpoint_id in (select e.id from delivery_endpoints e"
                                   " where e.org_id = deliveries.org_id and e.affiliate_id = {0})"}
_DELIVERY_FILTERS = ("endpoint_id", "status", "event_type", "event_id")
_values_decoder = msgspec.json.Decoder(dict[str, str | None])


async def list_endpoints(
    conn: asyncpg.Connection, org_id: uuid.UUID, kind: str, query: PageQuery, scope: Scope,
    affiliate_id: uuid.UUID | None = None,
) -> EndpointPage:
    """One page of the endpoints of ``kind`` the caller sees (``affiliate_id``: of that affiliate only)."""
    data, cursor = await fetch_page(
        conn, "delivery_endpoints", endpoints.COLUMNS, endpoints.DeliveryEndpoint, org_id, query,
        {"kind": kind, "affiliate_id": affiliate_id}, scoped_by(_ENDPOINT_SCOPE, scope))
    return EndpointPage(data=data, next_cursor=cursor)


async def get_endpoint(
    conn: asyncpg.Connection, org_id: uuid.UUID, kind: str, endpoint_id: uuid.UUID, scope: Scope,
) -> endpoints.DeliveryEndpoint:
    return await fetch_one(
        conn, "delivery_endpoints", endpoints.COLUMNS, endpoints.DeliveryEndpoint, org_id, endpoint_id,
        endpoints.WHAT[kind], scoped_by(_ENDPOINT_SCOPE, scope), {"kind": kind})


async def list_deliveries(conn: asyncpg.Connection, org_id: uuid.UUID, query: DeliveryQuery, scope: Scope) -> DeliveryPage:
    data, cursor = await fetch_page(
        conn, "deliveries", DELIVERY_COLUMNS, DeliveryView, org_id, query,
        {f: getattr(query, f) for f in _DELIVERY_FILTERS}, scoped_by(_DELIVERY_SCOPE, scope))
    return DeliveryPage(data=data, next_cursor=cursor)


async def get_delivery(
    conn: asyncpg.Connection, org_id: uuid.UUID, delivery_id: uuid.UUID, scope: Scope, *, lock: bool = False,
) -> DeliveryView:
    """One delivery's state; ``lock``: ``for update``."""
    return await fetch_one(conn, "deliveries", DELIVERY_COLUMNS, DeliveryView, org_id, delivery_id, "delivery",
                           scoped_by(_DELIVERY_SCOPE, scope), lock=lock)


async def get_delivery_detail(
    conn: asyncpg.Connection, org_id: uuid.UUID, delivery_id: uuid.UUID, scope: Scope,
) -> DeliveryDetail:
    """One delivery with what it sends (the webhook's JSON, the postback's macro values)
    and every attempt made, oldest first."""
    row = await fetch_one(conn, "deliveries", _DETAIL_COLUMNS, dict, org_id, delivery_id, "delivery",
                          scoped_by(_DELIVERY_SCOPE, scope))
    body, kind, url = row.pop("body"), row.pop("kind"), row.pop("url")
    attempts = await conn.fetch(
        f"select {ATTEMPT_COLUMNS} from delivery_attempts where org_id = $1 and delivery_id = $2 order by id",
        org_id, delivery_id)
    try:
        sent = {"payload": msgspec.json.decode(body)} if kind == endpoints.WEBHOOK else {
            "macro_values": _values_decoder.decode(body)}
    except msgspec.DecodeError:  # the dispatcher wrote it, so never; but a read must not fail on it
        sent = {}
    return DeliveryDetail(
        **row, **sent, endpoint_kind=kind, endpoint_url=url,
        attempts=[DeliveryAttemptView(**dict(a)) for a in attempts])
