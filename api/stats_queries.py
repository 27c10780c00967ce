"""The read behind GET /v1/stats: one SQL statement over the rollups, built from a
``core.stats.StatsPlan`` (the plan and why it is exact are in ``core.stats``).

The statement, in steps:

- ``src``: for each piece of the coverage, the rows of ``stats_<cube>_1d``, ``_1h`` or
  ``_15m`` in it (a lateral index range scan per piece), with the time key
  computed from ``bucket + offset`` of the piece, filtered by the plan's filters and pins;
- ``by_cur``: summed per group key and currency (clicks live in rows without a currency);
- ``g``: one row per group key: counts over every currency, money as parallel arrays
  (one entry per currency, never summed across currencies), the sort columns;
- ``tot``: the same over the whole range, joined to every row of the page, so an empty
  page still returns the totals.

Sums are ``afftok_sum`` (migrations/0016_stats_sum.sql): bigint in, bigint out, no
numeric detour. Identifiers come only from fixed tables here; every value is a parameter. It runs in the
caller's tenant transaction: ``org_id = $1`` first, row-level security behind it.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import Any

import asyncpg

from api.schemas import StatsConversions, StatsKey, StatsMoney, StatsPage, StatsQueryEcho, StatsRow, StatsTotals
from core.errors import ValidationError
from core.stats import KEY_NAMES, MONEY_MEASURES, SORT_KINDS, StatsPlan, encode_cursor
from core.stats_measures import conversion_rate, epc

_COLUMNS = {"offer": "offer_id", "advertiser": "advertiser_id", "affiliate": "affiliate_id", "goal": "goal_key",
            "country": "country", "device": "device", "sub1": "sub1"}
_FILTER_TYPES = {"offer": "uuid", "advertiser": "uuid", "affiliate": "uuid"}
_LOCAL = "(s.bucket at time zone 'UTC' + p.shift)"
_TIME_KEYS = {
    "hour": f"((date_trunc('hour', {_LOCAL}) - p.shift) at time zone 'UTC')",
    "day": f"({_LOCAL})::date",
    "week": f"date_trunc('week', {_LOCAL})::date",
    "month": f"date_trunc('month', {_LOCAL})::date",
}
_COUNTS = ("clicks", "unique_clicks", "conversions_pending", "conversions_approved", "conversions_rejected",
           "conversions_reversed", "fraud_flagged")
_MONEY = ("revenue_minor", "payout_minor")
_PARAM_TYPES = {"datetime": "timestamptz", "date": "date", "text": "text", "int": "bigint", "decimal": "numeric"}
_MEASURE_SORTS = {
    "clicks": "clicks", "unique_clicks": "unique_clicks", "conversions": "conversions_total",
    "revenue": "cur_revenue", "payout": "cur_payout", "profit": "(cur_revenue - cur_payout)",
    "conversion_rate": "coalesce(conversions_approved::numeric / nullif(clicks, 0), -1)",
    "epc": "coalesce(cur_payout::numeric / nullif(clicks, 0), -1)",
}


class _Sql:
    """Parameters collected while the statement is written."""

    def __init__(self) -> None:
        self.args: list[Any] = []

    def param(self, value: Any, cast: str) -> str:
        self.args.append(value)
        return f"${len(self.args)}::{cast}"


_GRAINS = ("1d", "1h", "15m")


def _sort_expression(plan: StatsPlan, name: str) -> str:
    keys = _keys(plan)
    if name in keys:
        if name in _COLUMNS:  # nullable: null first, then every value after a '~'
            return f"(case when k{keys.index(name)} is null then '' else '~' || k{keys.index(name)}::text end) collate \"C\""
        return f"k{keys.index(name)}"
    return _MEASURE_SORTS[name]


def _keys(plan: StatsPlan) -> list[str]:
    return ([plan.time_dimension] if plan.time_dimension else []) + list(plan.dimensions)


def _source(plan: StatsPlan, sql: _Sql, grain: str) -> str:
    pieces = [p for p in plan.pieces if p.grain == grain]
    starts = sql.param([p.start for p in pieces], "timestamptz[]")
    ends = sql.param([p.end for p in pieces], "timestamptz[]")
    shifts = sql.param([dt.timedelta(seconds=p.offset_s) for p in pieces], "interval[]")
    where = ["s.org_id = $1", "s.bucket >= p.lo", "s.bucket < p.hi"]
    for dimension, values in plan.filters.items():
        kind = _FILTER_TYPES.get(dimension, "text")
        typed = [uuid.UUID(v) for v in values] if kind == "uuid" else list(values)
        where.append(f"s.{_COLUMNS[dimension]}::{kind} = any({sql.param(typed, kind + '[]')})")
    keys = [_TIME_KEYS[k] if k in _TIME_KEYS else f"s.{_COLUMNS[k]}::{_FILTER_TYPES.get(k, 'text')}" for k in _keys(plan)]
    columns = [f"{expression} as k{i}" for i, expression in enumerate(keys)]
    table = f"stats_{plan.cube}_{grain}"
    return (
        f"select {', '.join(columns + ['s.currency::text as currency'] + [f's.{c}' for c in _COUNTS + _MONEY])}"
        f" from unnest({starts}, {ends}, {shifts}) as p(lo, hi, shift)"
        f" cross join lateral (select * from {table} s where {' and '.join(where)}) s"
    )


def _money_columns(plan: StatsPlan, sql: _Sql, prefix: str) -> list[str]:
    shown = "currency is not null"
    if plan.currencies:
        shown += f" and currency = any({sql.param(list(plan.currencies), 'text[]')})"
    return [f"array_agg({c} order by currency) filter (where {shown}) as {prefix}{c}s" for c in ("currency",) + _MONEY]


def _statement(plan: StatsPlan, sql: _Sql) -> str:
    keys = [f"k{i}" for i in range(len(_keys(plan)))]
    sums = [f"afftok_sum({c}) as {c}" for c in _COUNTS + _MONEY]
    chosen = []
    if len(plan.currencies) == 1:  # the one currency money is sorted by
        only = sql.param(plan.currencies[0], "text")
        chosen = [f"afftok_sum({m}) filter (where currency = {only}) as cur_{m.removesuffix('_minor')}"
                  for m in _MONEY]
    statuses = " + ".join(c for c in _COUNTS if c.startswith("conversions_"))
    sorts = [f"{_sort_expression(plan, k.name)} as s{i}" for i, k in enumerate(plan.sort)]
    order = ", ".join(f"s{i}{' desc' if k.descending else ''}" for i, k in enumerate(plan.sort))
    order = f" order by {order}" if order else ""
    counts = [f"afftok_sum({c}) as {c}" for c in _COUNTS]
    return (
        f"with src as ({' union all '.join(_source(plan, sql, g) for g in _GRAINS if any(p.grain == g for p in plan.pieces))}),"
        f" by_cur as (select {', '.join(keys + ['currency'] + sums)} from src group by {', '.join(keys + ['currency'])}),"
        f" g0 as (select {', '.join(keys + counts + _money_columns(plan, sql, '') + chosen)} from by_cur"
        f"{' group by ' + ', '.join(keys) if keys else ' having count(*) > 0'}),"
        f" g1 as (select *, {statuses} as conversions_total from g0),"
        f" g as (select {', '.join(['*'] + sorts)} from g1),"
        f" page as (select * from g where {_after(plan, sql)}{order} limit {plan.limit + 1}),"
        f" tot_cur as (select currency, {', '.join(sums)} from by_cur group by currency),"
        f" tot as (select {', '.join([c + '_t' for c in counts] + _money_columns(plan, sql, 't_'))} from tot_cur)"
        f" select * from tot left join page on true{order}"
    )


def _after(plan: StatsPlan, sql: _Sql) -> str:
    """Rows after the cursor's in the sort order: (s0 > v0) or (s0 = v0 and s1 > v1) or …"""
    if plan.after is None:
        return "true"
    values = [sql.param(v, _PARAM_TYPES[SORT_KINDS[k.name]]) for v, k in zip(plan.after, plan.sort)]
    ors = []
    for i, key in enumerate(plan.sort):
        equal = [f"s{j} = {values[j]}" for j in range(i)]
        ors.append("(" + " and ".join(equal + [f"s{i} {'<' if key.descending else '>'} {values[i]}"]) + ")")
    return "(" + " or ".join(ors) + ")"


_ID_TABLES = {"offer": "offers", "advertiser": "advertisers", "affiliate": "affiliates"}


async def check_filter_ids(conn: asyncpg.Connection, org_id: uuid.UUID, plan: StatsPlan) -> None:
    """Every offer, advertiser and affiliate id the caller filters by names a row of its
    organization; else 422 ``unknown_id`` naming the field. Another organization's id is
    invisible here (row-level security), so it is refused exactly like a missing one."""
    for dimension, table in _ID_TABLES.items():
        wanted = {uuid.UUID(v) for v in plan.filters.get(dimension, ())}
        if not wanted:
            continue
        found = {r["id"] for r in await conn.fetch(
            f"select id from {table} where org_id = $1 and id = any($2::uuid[])", org_id, list(wanted))}
        if wanted - found:
            raise ValidationError("unknown_id", f"{dimension}_id: no such {dimension} in this organization")


async def query_stats(conn: asyncpg.Connection, org_id: uuid.UUID, plan: StatsPlan) -> StatsPage:
    """One page of ``plan``'s rows and its totals, shaped for the measures the plan holds."""
    sql = _Sql()
    sql.param(org_id, "uuid")
    rows = await conn.fetch(_statement(plan, sql), *sql.args)
    zone = zoneinfo.ZoneInfo(plan.tz)
    found = [r for r in rows if r["clicks"] is not None]  # an empty page: the totals alone
    data = [StatsRow(key=_key(r, plan, zone), **_measures(r, plan, "", "")) for r in found[: plan.limit]]
    after = None
    if len(found) > plan.limit:
        after = encode_cursor(plan, tuple(found[plan.limit - 1][f"s{i}"] for i in range(len(plan.sort))))
    echo = StatsQueryEcho(
        from_=plan.start.astimezone(zone).isoformat(), to=plan.end.astimezone(zone).isoformat(), tz=plan.tz,
        group_by=list(plan.group_by), measures=list(plan.measures),
    )
    return StatsPage(data=data, totals=StatsTotals(**_measures(rows[0], plan, "t_", "_t")), next_cursor=after,
                     query=echo)


def _key(row: asyncpg.Record, plan: StatsPlan, zone: zoneinfo.ZoneInfo) -> StatsKey:
    key: dict[str, str | None] = {}
    for i, name in enumerate(_keys(plan)):
        value = row[f"k{i}"]
        if name == "hour":
            key[name] = value.astimezone(zone).isoformat()
        elif name in ("day", "week", "month"):
            key[name] = value.isoformat()[: 7 if name == "month" else 10]
        else:
            key[KEY_NAMES[name]] = None if value is None or value == "" else str(value)
    return StatsKey(**key)


def _measures(row: asyncpg.Record, plan: StatsPlan, prefix: str, suffix: str) -> dict[str, Any]:
    """The fields of a row (or, with ``t_``/``_t``, of the totals) for the plan's measures."""
    count = {c: row[c + suffix] for c in _COUNTS}
    clicks, asked = count["clicks"], set(plan.measures)
    out: dict[str, Any] = {m: count[m] for m in ("clicks", "unique_clicks") if m in asked}
    if "conversions" in asked:
        by_status = {s: count[f"conversions_{s}"] for s in ("pending", "approved", "rejected", "reversed")}
        out["conversions"] = StatsConversions(**by_status, total=sum(by_status.values()))
        out["fraud_flagged"] = count["fraud_flagged"]
    if "conversion_rate" in asked:
        out["conversion_rate"] = conversion_rate(count["conversions_approved"], clicks)
    if asked & MONEY_MEASURES:
        money = zip(row[prefix + "currencys"] or [], row[prefix + "revenue_minors"] or [],
                    row[prefix + "payout_minors"] or [])
        out["money"] = [_money(currency, revenue, payout, clicks, asked) for currency, revenue, payout in money]
    return out


def _money(currency: str, revenue: int, payout: int, clicks: int, asked: set[str]) -> StatsMoney:
    shown: dict[str, Any] = {
        "revenue_minor": revenue, "payout_minor": payout, "profit_minor": revenue - payout,
        "epc": epc(payout, clicks, currency),
    }
    names = {"revenue_minor": "revenue", "payout_minor": "payout", "profit_minor": "profit", "epc": "epc"}
    return StatsMoney(currency=currency, **{f: v for f, v in shown.items() if names[f] in asked})
