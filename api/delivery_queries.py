"""Reads of outbound endpoints and deliveries for the API, scoped like their writes.

An affiliate key reads its own endpoints and their deliveries, never the organization's
own webhooks' (their events may be about every affiliate) nor another affiliate's; every
other role with the action reads the whole organization's. The scope is in the SQL (the
explicit ``org_id`` first, row-level security the backstop), so an id outside it reads
exactly like a missing one.

Lists are newest first by ``(created_at, id)``, paged by the same opaque cursor as every list.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec

from api.delivery_schemas import (
    DeliveryAttemptView, DeliveryDetail, DeliveryPage, DeliveryQuery, DeliveryView, EndpointPage,
)
from api.queries import decode_cursor, encode_cursor
from api.schemas import PageQuery
from core.errors import NotFound
from core.permissions import Scope
from core.store import delivery_endpoints as endpoints

# A held delivery's next_attempt_at is HELD, shown as null. asyncpg writes datetime.max
# (HELD) as 'infinity', and reads 'infinity' back as a naive datetime.max.
DELIVERY_COLUMNS = (
    "id, org_id, endpoint_id, event_id, event_type, status, attempts as attempt_count, event_created_at, created_at,"
    " nullif(next_attempt_at, 'infinity') as next_attempt_at, retry_until, last_attempt_at,"
    " last_status_code, last_error, delivered_at, dead_at"
)
ATTEMPT_COLUMNS = "attempt, started_at, latency_ms, status_code, error, response_excerpt, url"
_DELIVERY_SCOPE = (
    "endpoint_id in (select e.id from delivery_endpoints e where e.org_id = deliveries.org_id and e.affiliate_id = {})"
)
_DELIVERY_FILTERS = {"endpoint_id": "endpoint_id = {}", "status": "status = {}", "event_type": "event_type = {}",
                     "event_id": "event_id = {}"}
_values_decoder = msgspec.json.Decoder(dict[str, str | None])


async def _page(
    conn: asyncpg.Connection, table: str, columns: str, conditions: list[tuple[str, Any]], query: PageQuery,
) -> tuple[list[asyncpg.Record], str | None]:
    """One page of ``table``'s rows matching every (condition with "{}", value)."""
    args: list[Any] = []
    where = []
    for condition, value in conditions:
        args.append(value)
        where.append(condition.format(f"${len(args)}"))
    if query.cursor is not None:
        args.extend(decode_cursor(query.cursor))
        where.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
    args.append(query.limit + 1)
    rows = await conn.fetch(
        f"select {columns} from {table} where {' and '.join(where)}"
        f" order by created_at desc, id desc limit ${len(args)}", *args)
    more = len(rows) > query.limit
    last = rows[query.limit - 1] if more else None
    return rows[: query.limit], encode_cursor(last["created_at"], last["id"]) if last else None


def _endpoint_conditions(org_id: uuid.UUID, kind: str, scope: Scope) -> list[tuple[str, Any]]:
    conditions: list[tuple[str, Any]] = [("org_id = {}", org_id), ("kind = {}", kind)]
    if scope.affiliate_id is not None:
        conditions.append(("affiliate_id = {}", scope.affiliate_id))
    return conditions


async def list_endpoints(
    conn: asyncpg.Connection, org_id: uuid.UUID, kind: str, query: PageQuery, scope: Scope,
    affiliate_id: uuid.UUID | None = None,
) -> EndpointPage:
    """One page of the endpoints of ``kind`` the caller sees (``affiliate_id``: of that affiliate only)."""
    conditions = _endpoint_conditions(org_id, kind, scope)
    if affiliate_id is not None:
        conditions.append(("affiliate_id = {}", affiliate_id))
    rows, cursor = await _page(conn, "delivery_endpoints", endpoints.COLUMNS, conditions, query)
    return EndpointPage(data=[endpoints.DeliveryEndpoint(**dict(r)) for r in rows], next_cursor=cursor)


async def get_endpoint(
    conn: asyncpg.Connection, org_id: uuid.UUID, kind: str, endpoint_id: uuid.UUID, scope: Scope,
) -> endpoints.DeliveryEndpoint:
    conditions = [*_endpoint_conditions(org_id, kind, scope), ("id = {}", endpoint_id)]
    row = await conn.fetchrow(
        f"select {endpoints.COLUMNS} from delivery_endpoints where"
        f" {' and '.join(c.format(f'${n}') for n, (c, _) in enumerate(conditions, start=1))}",
        *[v for _, v in conditions])
    if row is None:
        raise NotFound("not_found", f"{endpoints.WHAT[kind]} not found")
    return endpoints.DeliveryEndpoint(**dict(row))


def _delivery_conditions(org_id: uuid.UUID, scope: Scope) -> list[tuple[str, Any]]:
    conditions: list[tuple[str, Any]] = [("org_id = {}", org_id)]
    if scope.affiliate_id is not None:
        conditions.append((_DELIVERY_SCOPE, scope.affiliate_id))
    return conditions


async def list_deliveries(conn: asyncpg.Connection, org_id: uuid.UUID, query: DeliveryQuery, scope: Scope) -> DeliveryPage:
    conditions = _delivery_conditions(org_id, scope)
    conditions += [(c, getattr(query, f)) for f, c in _DELIVERY_FILTERS.items() if getattr(query, f) is not None]
    rows, cursor = await _page(conn, "deliveries", DELIVERY_COLUMNS, conditions, query)
    return DeliveryPage(data=[DeliveryView(**dict(r)) for r in rows], next_cursor=cursor)


async def _delivery_row(
    conn: asyncpg.Connection, org_id: uuid.UUID, delivery_id: uuid.UUID, scope: Scope, columns: str, lock: bool,
) -> asyncpg.Record:
    conditions = [*_delivery_conditions(org_id, scope), ("id = {}", delivery_id)]
    row = await conn.fetchrow(
        f"select {columns} from deliveries where"
        f" {' and '.join(c.format(f'${n}') for n, (c, _) in enumerate(conditions, start=1))}"
        f"{' for update' if lock else ''}",
        *[v for _, v in conditions])
    if row is None:
        raise NotFound("not_found", "delivery not found")
    return row


async def get_delivery(
    conn: asyncpg.Connection, org_id: uuid.UUID, delivery_id: uuid.UUID, scope: Scope, *, lock: bool = False,
) -> DeliveryView:
    """One delivery's state; ``lock``: ``for update``."""
    return DeliveryView(**dict(await _delivery_row(conn, org_id, delivery_id, scope, DELIVERY_COLUMNS, lock)))


async def get_delivery_detail(
    conn: asyncpg.Connection, org_id: uuid.UUID, delivery_id: uuid.UUID, scope: Scope,
) -> DeliveryDetail:
    """One delivery with what it sends (the webhook's JSON, the postback's macro values)
    and every attempt made, oldest first."""
    columns = (f"{DELIVERY_COLUMNS}, body, (select e.kind from delivery_endpoints e where e.id = endpoint_id) as kind,"
               " (select e.url from delivery_endpoints e where e.id = endpoint_id) as url")
    row = dict(await _delivery_row(conn, org_id, delivery_id, scope, columns, lock=False))
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
