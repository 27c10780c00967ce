"""The reads behind clicks and conversions exports, and the clicks listing.

These live in ``core`` rather than in an api query module because two apps run them:
the api streams them to the caller and the worker's export job writes them to a file
(``workers.exports``), and apps do not import each other. Each runs on a connection
whose transaction is set to the organization (row-level security), with the explicit
``org_id`` filter first.

Scoping: an advertiser sees the clicks of its own offers and its own conversions, an
affiliate its own clicks and the conversions attributed to it. Scoped roles never see
the visitor's address or user agent; the conversion columns hidden from each role are
those of the conversions API (``core.conversion_visibility``), and a scoped role may not
filter by a column it cannot see.

Rows stream through a server-side cursor a chunk at a time (``stream_rows``), newest
first in a stable order, so memory stays flat whatever the size. Instants and ids are
selected as text (ISO 8601 in UTC, ``Z``), ready for any file format; for CSV, text a
partner or visitor sent is selected formula-safe (``core.export_format``).
"""

from __future__ import annotations

import uuid
from typing import Any, AsyncIterator

import asyncpg
import msgspec

from core.conversion_visibility import hidden_from
from core.errors import Forbidden
from core.export_format import csv_safe_sql
from core.exports import ClickFilters, ConversionFilters
from core.permissions import Scope

CHUNK_ROWS = 5000


def _iso(column: str) -> str:
    return f"""to_char({column} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def _id(column: str) -> str:
    return f"{column}::text"


# column -> (select expression, what it holds): "safe" (ids, instants, numbers, our own
# codes: never formula-like), "text" (anything a visitor or a partner sent), "list", "json".
CLICK_COLUMNS: dict[str, tuple[str, str]] = {
    "click_id": ("click_id", "safe"), "clicked_at": (_iso("clicked_at"), "safe"),
    "offer_id": (_id("offer_id"), "safe"), "affiliate_id": (_id("affiliate_id"), "safe"),
    "link_id": (_id("link_id"), "safe"), "outcome": ("outcome", "safe"),
    "sub1": ("sub1", "text"), "sub2": ("sub2", "text"), "sub3": ("sub3", "text"), "sub4": ("sub4", "text"),
    "sub5": ("sub5", "text"), "source_id": ("source_id", "text"), "country": ("rtrim(country)", "text"),
    "device_type": ("device_type", "safe"), "referer": ("referer", "text"), "ip": ("host(ip)", "safe"),
    "user_agent": ("user_agent", "text"),
}
CLICK_HIDDEN_SCOPED = frozenset({"ip", "user_agent"})
_CLICK_FILTERS = {
    "offer_id": "offer_id = {}", "affiliate_id": "affiliate_id = {}", "link_id": "link_id = {}",
    "country": "country = {}", "device": "device_type = {}", "sub1": "sub1 = {}", "outcome": "outcome = {}",
}
_CLICK_SCOPE = {
    "advertiser_id": "offer_id in (select o.id from offers o where o.org_id = clicks.org_id and o.advertiser_id = {})",
    "affiliate_id": "affiliate_id = {}",
}

CONVERSION_COLUMNS: dict[str, tuple[str, str]] = {
    "id": (_id("id"), "safe"), "click_id": ("click_id", "text"), "clicked_at": (_iso("clicked_at"), "safe"),
    "offer_id": (_id("offer_id"), "safe"), "affiliate_id": (_id("affiliate_id"), "safe"),
    "advertiser_id": (_id("advertiser_id"), "safe"), "link_id": (_id("link_id"), "safe"),
    "external_id": ("external_id", "text"), "goal": ("goal", "text"), "status": ("status", "safe"),
    "reason": ("reason", "text"), "fraud_flags": ("fraud_flags", "list"),
    "sale_amount_minor": ("sale_amount_minor", "safe"), "sale_currency": ("sale_currency", "text"),
    "revenue_minor": ("revenue_minor", "safe"), "payout_minor": ("payout_minor", "safe"),
    "currency": ("currency", "text"), "rule_applied": ("rule_applied", "text"), "product_id": ("product_id", "text"),
    "order_id": ("order_id", "text"), "customer_id": ("customer_id", "text"), "metadata": ("metadata", "json"),
    "ip": ("host(ip)", "safe"), "user_agent": ("user_agent", "text"), "country": ("rtrim(country)", "text"),
    "source": ("source", "safe"), "postback_id": (_id("postback_id"), "safe"),
    "received_at": (_iso("received_at"), "safe"), "created_at": (_iso("created_at"), "safe"),
    "updated_at": (_iso("updated_at"), "safe"),
}
_CONVERSION_FILTERS = {
    "status": "status = {}", "offer_id": "offer_id = {}", "affiliate_id": "affiliate_id = {}",
    "advertiser_id": "advertiser_id = {}", "click_id": "click_id = {}", "external_id": "external_id = {}",
    "reason": "reason = {}", "created_from": "created_at >= {}", "created_to": "created_at < {}",
}


class Selection(msgspec.Struct, frozen=True, kw_only=True):
    """One export's rows: its columns, the ``where`` clause and its arguments."""

    table: str
    columns: tuple[str, ...]
    select: str
    where: str
    args: tuple[Any, ...]
    order: str

    def sql(self) -> str:
        return f"select {self.select} from {self.table} where {self.where} order by {self.order}"


def _select(spec: dict[str, tuple[str, str]], columns: tuple[str, ...], fmt: str) -> str:
    """The select list; for CSV, text is formula-safe and lists and objects are text."""
    def expression(column: str) -> str:
        sql, holds = spec[column]
        if fmt != "csv" or holds == "safe":
            return sql
        if holds == "list":
            sql = f"array_to_string({sql}, ';')"
        elif holds == "json":
            sql = f"({sql})::text"
        return csv_safe_sql(sql)

    return ", ".join(f"{expression(c)} as {c}" for c in columns)


def _conditions(conditions: dict[str, str], filters: Any, org_id: uuid.UUID) -> tuple[list[str], list[Any]]:
    where, args = ["org_id = $1"], [org_id]
    for field, condition in conditions.items():
        if (value := getattr(filters, field)) is not None:
            args.append(value)
            where.append(condition.format(f"${len(args)}"))
    return where, args


def _scope(where: list[str], args: list[Any], conditions: dict[str, str], scope: Scope) -> None:
    for field, condition in conditions.items():
        if (value := getattr(scope, field)) is not None:
            args.append(value)
            where.append(condition.format(f"${len(args)}"))


def click_selection(org_id: uuid.UUID, filters: ClickFilters, scope: Scope, fmt: str = "jsonl") -> Selection:
    """``filters`` must be resolved (``ClickFilters.resolved``): its window is set. ``fmt``:
    csv selects formula-safe text; anything else the values as stored."""
    where, args = _conditions(_CLICK_FILTERS, filters, org_id)
    args.extend((filters.from_, filters.to))
    where.append(f"clicked_at >= ${len(args) - 1} and clicked_at < ${len(args)}")
    _scope(where, args, _CLICK_SCOPE, scope)
    hidden = CLICK_HIDDEN_SCOPED if scope.is_scoped else frozenset()
    columns = tuple(c for c in CLICK_COLUMNS if c not in hidden)
    return Selection(
        table="clicks", columns=columns, select=_select(CLICK_COLUMNS, columns, fmt),
        where=" and ".join(where), args=tuple(args), order="clicked_at desc, click_id desc",
    )


def conversion_selection(
    org_id: uuid.UUID, filters: ConversionFilters, scope: Scope, fmt: str = "jsonl",
) -> Selection:
    hidden = hidden_from(scope)
    refused = [f for f in _CONVERSION_FILTERS if getattr(filters, f) is not None and f in hidden]
    if refused:
        raise Forbidden("forbidden", f"this role may not filter conversions by {', '.join(refused)}")
    where, args = _conditions(_CONVERSION_FILTERS, filters, org_id)
    _scope(where, args, {"affiliate_id": "affiliate_id = {}", "advertiser_id": "advertiser_id = {}"}, scope)
    columns = tuple(c for c in CONVERSION_COLUMNS if c not in hidden)
    return Selection(
        table="conversions", columns=columns, select=_select(CONVERSION_COLUMNS, columns, fmt),
        where=" and ".join(where), args=tuple(args), order="created_at desc, id desc",
    )


async def count_rows(conn: asyncpg.Connection, selection: Selection) -> int:
    return await conn.fetchval(f"select count(*) from {selection.table} where {selection.where}", *selection.args)


async def stream_rows(
    conn: asyncpg.Connection, selection: Selection, chunk_rows: int = CHUNK_ROWS,
) -> AsyncIterator[list[asyncpg.Record]]:
    """Every selected row, ``chunk_rows`` at a time; ``conn`` must be in a transaction."""
    cursor = await conn.cursor(selection.sql(), *selection.args)
    while chunk := await cursor.fetch(chunk_rows):
        yield chunk


async def page_of_clicks(
    conn: asyncpg.Connection, selection: Selection, after: tuple[Any, str] | None, limit: int,
) -> list[asyncpg.Record]:
    """Up to ``limit`` rows of a clicks selection older than ``after`` (clicked_at, click_id),
    with ``clicked_ts`` (the instant as a timestamp) for the next cursor."""
    extra, args = "", list(selection.args)
    if after is not None:
        args.extend(after)
        extra = f" and (clicked_at, click_id) < (${len(args) - 1}, ${len(args)})"
    args.append(limit)
    sql = (
        f"select {selection.select}, clicked_at as clicked_ts from clicks where {selection.where}{extra}"
        f" order by {selection.order} limit ${len(args)}"
    )
    return await conn.fetch(sql, *args)
