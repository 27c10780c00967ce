"""Reads of conversions for the API: the filtered list, one conversion with its status
history, each shaped for the caller's role.

Scoping, in the SQL (row-level security is the backstop): an advertiser key sees its own
advertiser's conversions, an affiliate key the conversions attributed to it; every other
role the whole organization. Another organization's id reads exactly like a missing one.

What each role is shown is ``core.conversion_visibility``'s (absent fields, not nulls).

Newest first by ``(created_at, id)``, paged by the same opaque cursor as every list.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from api.queries import decode_cursor, encode_cursor
from api.schemas import ConversionDetail, ConversionPage, ConversionQuery, ConversionView, StatusChangeView
from core.conversion_visibility import ADVERTISER_HIDDEN, AFFILIATE_HIDDEN, hidden_from  # noqa: F401 (re-exported)
from core.errors import Forbidden, NotFound
from core.permissions import UNSCOPED, Scope

COLUMNS = (
    "id, org_id, advertiser_id, click_id, clicked_at, offer_id, affiliate_id, link_id, external_id, goal, status,"
    " reason, fraud_flags, sale_amount_minor, sale_currency, revenue_minor, payout_minor, currency, rule_applied,"
    " product_id, order_id, customer_id, metadata, host(ip) as ip, user_agent, rtrim(country) as country, source,"
    " postback_id, received_at, created_at, updated_at"
)
HISTORY_COLUMNS = (
    "id, from_status, to_status, reason, actor, revenue_delta_minor, payout_delta_minor, currency, correlation_id,"
    " created_at"
)
# Filters: query field -> condition ("{}" is the parameter).
_FILTERS = {
    "status": "status = {}", "offer_id": "offer_id = {}", "affiliate_id": "affiliate_id = {}",
    "advertiser_id": "advertiser_id = {}", "click_id": "click_id = {}", "external_id": "external_id = {}",
    "reason": "reason = {}", "created_from": "created_at >= {}", "created_to": "created_at < {}",
}


def _scope_condition(scope: Scope) -> tuple[str, uuid.UUID] | None:
    if scope.affiliate_id is not None:
        return "affiliate_id = {}", scope.affiliate_id
    if scope.advertiser_id is not None:
        return "advertiser_id = {}", scope.advertiser_id
    return None


def _shown(row: asyncpg.Record, hidden: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in dict(row).items() if k not in hidden}


async def list_conversions(
    conn: asyncpg.Connection, org_id: uuid.UUID, query: ConversionQuery, scope: Scope = UNSCOPED,
) -> ConversionPage:
    hidden = hidden_from(scope)
    args: list[Any] = [org_id]
    where = ["org_id = $1"]
    conditions = [(c, getattr(query, f)) for f, c in _FILTERS.items() if getattr(query, f) is not None]
    refused = [f for f in _FILTERS if getattr(query, f) is not None and f in hidden]
    if refused:
        raise Forbidden("forbidden", f"this role may not filter conversions by {', '.join(refused)}")
    if (scoped := _scope_condition(scope)) is not None:
        conditions.append(scoped)
    for condition, value in conditions:
        args.append(value)
        where.append(condition.format(f"${len(args)}"))
    if query.cursor is not None:
        args.extend(decode_cursor(query.cursor))
        where.append(f"(created_at, id) < (${len(args) - 1}, ${len(args)})")
    args.append(query.limit + 1)
    rows = await conn.fetch(
        f"select {COLUMNS} from conversions where {' and '.join(where)}"
        f" order by created_at desc, id desc limit ${len(args)}", *args,
    )
    data = [ConversionView(**_shown(r, hidden)) for r in rows[: query.limit]]
    more = len(rows) > query.limit
    return ConversionPage(data=data, next_cursor=encode_cursor(data[-1].created_at, data[-1].id) if more else None)


async def get_conversion(
    conn: asyncpg.Connection, org_id: uuid.UUID, conversion_id: uuid.UUID, scope: Scope = UNSCOPED, *,
    lock: bool = False,
) -> ConversionDetail:
    """One conversion and its history, oldest change first; ``lock``: ``for update``."""
    args: list[Any] = [org_id, conversion_id]
    condition = ""
    if (scoped := _scope_condition(scope)) is not None:
        args.append(scoped[1])
        condition = " and " + scoped[0].format("$3")
    row = await conn.fetchrow(
        f"select {COLUMNS} from conversions where org_id = $1 and id = $2{condition}{' for update' if lock else ''}",
        *args,
    )
    if row is None:
        raise NotFound("not_found", "conversion not found")
    hidden = hidden_from(scope)
    history = await conn.fetch(
        f"select {HISTORY_COLUMNS} from conversion_status_history where org_id = $1 and conversion_id = $2 order by id",
        org_id, conversion_id,
    )
    return ConversionDetail(
        **_shown(row, hidden), history=[StatusChangeView(**_shown(h, hidden)) for h in history],
    )
