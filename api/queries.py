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
from msgspec import UNSET

from api.schemas import (
    AdvertiserPage, AffiliatePage, ApiKeyPage, AuditLogPage, AuditLogQuery, LinkOut, LinkPage, LinkQuery, OfferPage, OfferView,
    OfferQuery, OrganizationOut, PageQuery,
)
from api.schemas import UsageReport
from core.errors import NotFound, ValidationError
from core.offer_views import payout_rules_for
from core.permissions import UNSCOPED, Scope
from core.plans import months_back, plan_named, usage_month
from core.store import advertisers, affiliates, api_keys, audit, links, offers
from core.store.usage import UsageMonth

R = TypeVar("R")


def encode_cursor(created_at: dt.datetime, row_id: uuid.UUID | str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([created_at, row_id])).decode().rstrip("=")


def decode_cursor(cursor: str, id_type: type = uuid.UUID) -> tuple[dt.datetime, Any]:
    """The (instant, id) an ``encode_cursor`` cursor holds; ``id_type``: str for text ids (clicks)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, row_id = msgspec.json.decode(raw, type=tuple[dt.datetime, id_type])
    except (ValueError, msgspec.DecodeError):
        raise ValidationError("invalid_cursor", "cursor is not one this API returned") from None
    return created_at, row_id


def _where(org_id: uuid.UUID, filters: dict[str, Any], scoped: tuple[str, Any] | None) -> tuple[list[str], list[Any]]:
    """The conditions (and their arguments) of the rows of ``org_id`` whose ``filters``
    columns equal their values (a None value filters nothing) and that ``scoped`` admits."""
    args: list[Any] = [org_id]
    where = ["org_id = $1"]
    for column, value in filters.items():
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if scoped is not None:
        args.append(scoped[1])
        where.append(scoped[0].format(f"${len(args)}"))
    return where, args


async def fetch_page(
    conn: asyncpg.Connection, table: str, columns: str, make: Callable[..., R], org_id: uuid.UUID,
    query: PageQuery, filters: dict[str, Any], scoped: tuple[str, Any] | None = None,
) -> tuple[list[R], str | None]:
    """One page of ``table``'s rows, newest first, and the cursor of the next (None: the last)."""
    where, args = _where(org_id, filters, scoped)
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


async def fetch_one(
    conn: asyncpg.Connection, table: str, columns: str, make: Callable[..., R], org_id: uuid.UUID, row_id: uuid.UUID,
    what: str, scoped: tuple[str, Any] | None = None, filters: dict[str, Any] | None = None, *, lock: bool = False,
) -> R:
    """The row ``row_id``, if it also matches ``filters`` and ``scoped``; else ``NotFound``.
    ``lock``: ``for update``."""
    where, args = _where(org_id, {"id": row_id, **(filters or {})}, scoped)
    row = await conn.fetchrow(
        f"select {columns} from {table} where {' and '.join(where)}{' for update' if lock else ''}", *args)
    if row is None:
        raise NotFound("not_found", f"{what} not found")
    return make(**dict(row))


async def list_advertisers(conn: asyncpg.Connection, org_id: uuid.UUID, query: PageQuery) -> AdvertiserPage:
    data, cursor = await fetch_page(conn, "advertisers", advertisers.COLUMNS, advertisers.Advertiser, org_id, query, {})
    return AdvertiserPage(data=data, next_cursor=cursor)


async def get_advertiser(conn: asyncpg.Connection, org_id: uuid.UUID, advertiser_id: uuid.UUID) -> advertisers.Advertiser:
    return await fetch_one(conn, "advertisers", advertisers.COLUMNS, advertisers.Advertiser, org_id, advertiser_id, "advertiser")


async def list_affiliates(conn: asyncpg.Connection, org_id: uuid.UUID, query: PageQuery) -> AffiliatePage:
    data, cursor = await fetch_page(conn, "affiliates", affiliates.COLUMNS, affiliates.Affiliate, org_id, query, {})
    return AffiliatePage(data=data, next_cursor=cursor)


async def get_affiliate(conn: asyncpg.Connection, org_id: uuid.UUID, affiliate_id: uuid.UUID) -> affiliates.Affiliate:
    return await fetch_one(conn, "affiliates", affiliates.COLUMNS, affiliates.Affiliate, org_id, affiliate_id, "affiliate")


# What a scoped principal sees ("{0}" is the scope id's placeholder). An advertiser: its
# own offers and the links to them. An affiliate: its own links, and the offers it may
# promote by the edge's own rule (core.store.link_configs): approved on the offer, or no
# approval row and the offer does not require approval.
_OFFER_SCOPE = {
    "advertiser_id": "advertiser_id = {0}",
    "affiliate_id": "coalesce((select oa.status from offer_affiliates oa where oa.org_id = offers.org_id"
                    " and oa.offer_id = offers.id and oa.affiliate_id = {0}),"
                    " case when offers.requires_approval then 'pending' else 'approved' end) = 'approved'",
}
_LINK_SCOPE = {
    "advertiser_id": "offer_id in (select o.id from offers o where o.org_id = links.org_id and o.advertiser_id = {0})",
    "affiliate_id": "affiliate_id = {0}",
}


def scoped_by(conditions: dict[str, str], scope: Scope) -> tuple[str, Any] | None:
    """The condition (scope field: SQL with "{0}") that pins ``scope``'s role, with its value;
    None for organization-wide callers."""
    for field, condition in conditions.items():
        if (value := getattr(scope, field)) is not None:
            return condition, value
    return None


async def list_offers(conn: asyncpg.Connection, org_id: uuid.UUID, query: OfferQuery, scope: Scope = UNSCOPED) -> OfferPage:
    filters = {"status": query.status, "advertiser_id": query.advertiser_id}
    scoped = scoped_by(_OFFER_SCOPE, scope)
    data, cursor = await fetch_page(conn, "offers", offers.COLUMNS, offers.offer_from_row, org_id, query, filters, scoped)
    return OfferPage(data=await _offer_views(conn, org_id, data, scope), next_cursor=cursor)


async def get_offer(conn: asyncpg.Connection, org_id: uuid.UUID, offer_id: uuid.UUID, scope: Scope = UNSCOPED) -> offers.Offer:
    scoped = scoped_by(_OFFER_SCOPE, scope)
    return await fetch_one(conn, "offers", offers.COLUMNS, offers.offer_from_row, org_id, offer_id, "offer", scoped)


async def get_offer_view(conn: asyncpg.Connection, org_id: uuid.UUID, offer_id: uuid.UUID, scope: Scope) -> OfferView:
    (view,) = await _offer_views(conn, org_id, [await get_offer(conn, org_id, offer_id, scope)], scope)
    return view


_VIEW_FIELDS = [f for f in OfferView.__struct_fields__ if f in offers.Offer.__struct_fields__]
_AFFILIATE_HIDDEN = frozenset({
    "advertiser_id", "revenue_minor", "destination_url", "fallback_url", "commission", "fraud_policy", "caps",
})


async def _offer_views(conn: asyncpg.Connection, org_id: uuid.UUID, found: list[offers.Offer], scope: Scope) -> list[OfferView]:
    if scope.affiliate_id is None:
        return [OfferView(**{f: getattr(o, f) for f in _VIEW_FIELDS}) for o in found]
    rows = await conn.fetch(
        "select offer_id, payout_minor from offer_affiliates where org_id = $1 and affiliate_id = $2"
        " and offer_id = any($3::uuid[]) and payout_minor is not null",
        org_id, scope.affiliate_id, [o.id for o in found],
    )
    payout = {r["offer_id"]: r["payout_minor"] for r in rows}
    shown = [f for f in _VIEW_FIELDS if f not in _AFFILIATE_HIDDEN and f != "payout_minor"]
    return [
        OfferView(
            **{f: getattr(o, f) for f in shown}, payout_minor=payout.get(o.id, o.payout_minor),
            payout_rules=UNSET if o.commission is None else payout_rules_for(o.commission, str(scope.affiliate_id)),
        )
        for o in found
    ]


async def list_links(
    conn: asyncpg.Connection, org_id: uuid.UUID, query: LinkQuery, edge_url: str, scope: Scope = UNSCOPED,
) -> LinkPage:
    filters = {"offer_id": query.offer_id, "affiliate_id": query.affiliate_id}
    scoped = scoped_by(_LINK_SCOPE, scope)
    data, cursor = await fetch_page(conn, "links", links.COLUMNS, links.Link, org_id, query, filters, scoped)
    return LinkPage(data=[link_out(link, edge_url) for link in data], next_cursor=cursor)


def link_out(link: links.Link, edge_url: str) -> LinkOut:
    tracking_url = f"{edge_url.rstrip('/')}/c/{link.token}" if edge_url else None
    return LinkOut(**msgspec.structs.asdict(link), tracking_url=tracking_url)


async def list_api_keys(conn: asyncpg.Connection, org_id: uuid.UUID, query: PageQuery) -> ApiKeyPage:
    """Every key of the organization, revoked and rotated ones included; never a hash or a secret."""
    data, cursor = await fetch_page(conn, "api_keys", api_keys.COLUMNS, api_keys.ApiKey, org_id, query, {})
    return ApiKeyPage(data=data, next_cursor=cursor)


async def get_api_key(conn: asyncpg.Connection, org_id: uuid.UUID, key_id: uuid.UUID) -> api_keys.ApiKey:
    return await fetch_one(conn, "api_keys", api_keys.COLUMNS, api_keys.ApiKey, org_id, key_id, "API key")


async def find_offer_approval(
    conn: asyncpg.Connection, org_id: uuid.UUID, offer_id: uuid.UUID, affiliate_id: uuid.UUID,
) -> offers.OfferApproval | None:
    row = await conn.fetchrow(
        f"select {offers.APPROVAL_COLUMNS} from offer_affiliates where org_id = $1 and offer_id = $2 and affiliate_id = $3",
        org_id, offer_id, affiliate_id,
    )
    return offers.OfferApproval(**dict(row)) if row else None


async def get_organization(conn: asyncpg.Connection, org_id: uuid.UUID) -> OrganizationOut:
    row = await conn.fetchrow(
        "select id, name, plan, default_currency, created_at, ip_truncate, clicks_retention_days,"
        " conversions_retention_days from organizations where id = $1", org_id,
    )
    if row is None:
        raise NotFound("not_found", "organization not found")
    return OrganizationOut(**dict(row))


# The audit log: newest first by (occurred_at, id), the same opaque keyset cursor shape.
_AUDIT_FILTERS = {
    "action": "action = {}", "target_type": "target_type = {}", "target_id": "target_id = {}",
    "actor_id": "actor_id = {}", "since": "occurred_at >= {}", "until": "occurred_at < {}",
}


def _audit_cursor(occurred_at: dt.datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([occurred_at, row_id])).decode().rstrip("=")


def _decode_audit_cursor(cursor: str) -> tuple[dt.datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return msgspec.json.decode(raw, type=tuple[dt.datetime, int])
    except (ValueError, msgspec.DecodeError):
        raise ValidationError("invalid_cursor", "cursor is not one this API returned") from None


async def list_audit_log(conn: asyncpg.Connection, org_id: uuid.UUID, query: AuditLogQuery) -> AuditLogPage:
    args: list[Any] = [org_id]
    where = ["org_id = $1"]
    for field, condition in _AUDIT_FILTERS.items():
        if (value := getattr(query, field)) is not None:
            args.append(value)
            where.append(condition.format(f"${len(args)}"))
    if query.cursor is not None:
        args.extend(_decode_audit_cursor(query.cursor))
        where.append(f"(occurred_at, id) < (${len(args) - 1}, ${len(args)})")
    args.append(query.limit + 1)
    rows = await conn.fetch(
        f"select {audit.COLUMNS} from audit_log where {' and '.join(where)}"
        f" order by occurred_at desc, id desc limit ${len(args)}", *args,
    )
    data = [audit.AuditEntry(**dict(r)) for r in rows[: query.limit]]
    more = len(rows) > query.limit
    return AuditLogPage(data=data, next_cursor=_audit_cursor(data[-1].occurred_at, data[-1].id) if more else None)


async def usage_report(conn: asyncpg.Connection, org_id: uuid.UUID, now: dt.datetime) -> UsageReport:
    """The organization's plan, this month's usage and active offers, and the last 12 months."""
    plan = await conn.fetchval("select plan from organizations where id = $1", org_id)
    if plan is None:
        raise NotFound("not_found", "organization not found")
    months = months_back(usage_month(now), 12)
    rows = await conn.fetch(
        "select month, events, overage_events from usage_monthly where org_id = $1 and month between $2 and $3",
        org_id, months[-1], months[0],
    )
    found = {r["month"]: UsageMonth(**dict(r)) for r in rows}
    history = [found.get(m) or UsageMonth(month=m, events=0, overage_events=0) for m in months]
    active = await conn.fetchval("select count(*) from offers where org_id = $1 and status = 'active'", org_id)
    return UsageReport(
        plan=plan_named(plan), month=months[0], events=history[0].events,
        overage_events=history[0].overage_events, active_offers=active, months=history,
    )
