"""Reads for the API, each scoped to one organization.

Each runs on a connection from ``api.resources.tenant_transaction``: the explicit
``org_id`` filter is the first line of isolation, row-level security the backstop.

Lists are newest first in a stable order, ``(created_at, id)`` descending, paged by an
opaque keyset cursor; a row from another organization is never returned, so a foreign
id reads exactly like a missing one.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid
from typing import Any, Callable, TypeVar

import asyncpg
import msgspec

from api.schemas import (
    AdvertiserPage, AffiliatePage, LinkOut, LinkPage, LinkQuery, OfferPage, OfferQuery, PageQuery,
)
from core.errors import NotFound, ValidationError
from core.store import advertisers, affiliates, links, offers

R = TypeVar("R")


def encode_cursor(created_at: dt.datetime, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([created_at, row_id])).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = msgspec.json.decode(raw, type=tuple[dt.datetime, uuid.UUID])
    except (ValueError, msgspec.DecodeError):
        raise ValidationError("invalid_cursor", "cursor is not one this API returned") from None
    return created_at, row_id


async def _page(
    conn: asyncpg.Connection, table: str, columns: str, make: Callable[..., R], org_id: uuid.UUID,
    query: PageQuery, filters: dict[str, Any],
) -> tuple[list[R], str | None]:
    args: list[Any] = [org_id]
    where = ["org_id = $1"]
    for column, value in filters.items():
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if query.cursor is not None:
        args.extend(decode_cursor(query.cursor))
        where.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
    args.append(query.limit + 1)
    rows = await conn.fetch(
        f"select {columns} from {table} where {' and '.join(where)}"
        f" order by created_at desc, id desc limit ${len(args)}",
        *args,
    )
    items = [make(**dict(r)) for r in rows[: query.limit]]
    more = len(rows) > query.limit
    return items, encode_cursor(rows[query.limit - 1]["created_at"], rows[query.limit - 1]["id"]) if more else None


async def _one(conn: asyncpg.Connection, table: str, columns: str, make: Callable[..., R], org_id: uuid.UUID, row_id: uuid.UUID, what: str) -> R:
    row = await conn.fetchrow(f"select {columns} from {table} where org_id = $1 and id = $2", org_id, row_id)
    if row is None:
        raise NotFound("not_found", f"{what} not found")
    return make(**dict(row))


async def list_advertisers(conn: asyncpg.Connection, org_id: uuid.UUID, query: PageQuery) -> AdvertiserPage:
    data, cursor = await _page(conn, "advertisers", advertisers.COLUMNS, advertisers.Advertiser, org_id, query, {})
    return AdvertiserPage(data=data, next_cursor=cursor)


async def get_advertiser(conn: asyncpg.Connection, org_id: uuid.UUID, advertiser_id: uuid.UUID) -> advertisers.Advertiser:
    return await _one(conn, "advertisers", advertisers.COLUMNS, advertisers.Advertiser, org_id, advertiser_id, "advertiser")


async def list_affiliates(conn: asyncpg.Connection, org_id: uuid.UUID, query: PageQuery) -> AffiliatePage:
    data, cursor = await _page(conn, "affiliates", affiliates.COLUMNS, affiliates.Affiliate, org_id, query, {})
    return AffiliatePage(data=data, next_cursor=cursor)


async def get_affiliate(conn: asyncpg.Connection, org_id: uuid.UUID, affiliate_id: uuid.UUID) -> affiliates.Affiliate:
    return await _one(conn, "affiliates", affiliates.COLUMNS, affiliates.Affiliate, org_id, affiliate_id, "affiliate")


async def list_offers(conn: asyncpg.Connection, org_id: uuid.UUID, query: OfferQuery) -> OfferPage:
    filters = {"status": query.status, "advertiser_id": query.advertiser_id}
    data, cursor = await _page(conn, "offers", offers.COLUMNS, offers.Offer, org_id, query, filters)
    return OfferPage(data=data, next_cursor=cursor)


async def get_offer(conn: asyncpg.Connection, org_id: uuid.UUID, offer_id: uuid.UUID) -> offers.Offer:
    return await _one(conn, "offers", offers.COLUMNS, offers.Offer, org_id, offer_id, "offer")


async def list_links(conn: asyncpg.Connection, org_id: uuid.UUID, query: LinkQuery, edge_url: str) -> LinkPage:
    filters = {"offer_id": query.offer_id, "affiliate_id": query.affiliate_id}
    data, cursor = await _page(conn, "links", links.COLUMNS, links.Link, org_id, query, filters)
    return LinkPage(data=[link_out(link, edge_url) for link in data], next_cursor=cursor)


def link_out(link: links.Link, edge_url: str) -> LinkOut:
    tracking_url = f"{edge_url.rstrip('/')}/c/{link.token}" if edge_url else None
    return LinkOut(**msgspec.structs.asdict(link), tracking_url=tracking_url)
