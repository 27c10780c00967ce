"""Keeping the statistics rollups (migrations/0013_stats_rollups.sql) in step with the
rows they count, inside the transactions that write those rows.

Contract: every function here counts exactly the rows its caller's statement actually
inserted, in the caller's transaction, so a commit carries the rows and their counts
together and a rollback or a replay adds nothing.

- ``click_rollup_ctes``: the clicks just inserted, counted in the inserting statement
  itself (``core.store.clicks.insert_clicks`` runs them over its ``returning``;
  ``roll_up_new_clicks`` over the session's ``clicks_new`` table, for callers that write
  clicks otherwise). A click is unique when its visitor (address and user agent) has no click on
  the offer earlier that UTC day (``click_visitors``, first insert wins; concurrent
  batches wait on each other's uncommitted visitor rows, so one click counts). Its sub1
  becomes a dimension value when the offer has room for another (``sub1_limit``,
  values truncated to 100 characters), else '(other)'.
- ``roll_up_history``: the status history rows the caller just inserted, called last in
  its transaction (after caps, approvals and usage counters, so the conversion worker
  and an operator's change take their locks in one order). Each moves one
  count from its old status to its new one and adds its earned-money deltas, in the
  bucket of the conversion's ``received_at``, under the dimensions stored on the
  conversion (its click's country, device and sub1); the row that creates a
  conversion adds to ``fraud_flagged`` when any fraud rule fired on it.

Rows reach the nine tables (three cubes; 15-minute, hourly and daily grains) in one statement, each table in key
order, so concurrent writers lock rollup rows in the same order.
"""

from __future__ import annotations

import datetime as dt
from typing import Sequence

import asyncpg

from core.store.conversions import HistoryRow

DEFAULT_SUB1_LIMIT = 1000
# click_visitors keeps the visitors of today and the two UTC days before (a click that
# reaches Postgres later than that may count as unique again: a backlog of days).
VISITOR_DAYS_KEPT = 3
SUB1_OTHER = "(other)"
# A visitor: its address and user agent, hashed to 64 bits (migrations/0017).
VISITOR_SQL = "hashtextextended(coalesce(host({ip}), '') || '|' || coalesce({user_agent}, ''), 0)"
_VISITOR = VISITOR_SQL.format(ip="ip", user_agent="user_agent")
SUB1_MAX_CHARS = 100

_CUBES = {
    "offer": ("offer_id", "advertiser_id", "currency"),
    "affiliate": ("offer_id", "advertiser_id", "affiliate_id", "goal_key", "currency"),
    "full": ("offer_id", "advertiser_id", "affiliate_id", "goal_key", "country", "device", "sub1", "currency"),
}
_GRAINS = {"15m": 900, "1h": 3600, "1d": 86400}
MEASURES = ("clicks", "unique_clicks", "conversions_pending", "conversions_approved", "conversions_rejected",
            "conversions_reversed", "fraud_flagged", "revenue_minor", "payout_minor")


def _upserts(facts: str) -> str:
    """CTEs adding the facts in CTE ``facts`` (columns: org_id, at, every dimension of the
    full cube, every measure) to each cube and grain."""
    parts = []
    for cube, dims in _CUBES.items():
        for grain, seconds in _GRAINS.items():
            keys = ["org_id", "bucket", *dims]
            bucket = f"date_bin(interval '{seconds} seconds', at, timestamptz '1970-01-01 00:00:00+00')"
            sums = [f"sum({m})::bigint" for m in MEASURES]
            parts.append(
                f"u_{cube}_{grain} as (insert into stats_{cube}_{grain} as t ({', '.join(keys + list(MEASURES))})"
                f" select org_id, {bucket}, {', '.join(dims)}, {', '.join(sums)} from {facts}"
                f" group by {', '.join(str(i + 1) for i in range(len(keys)))}"
                f" order by {', '.join(str(i + 1) for i in range(len(keys)))}"
                f" on conflict ({', '.join(keys)}) do update set"
                f" {', '.join(f'{m} = t.{m} + excluded.{m}' for m in MEASURES)})"
            )
    return ", ".join(parts)


NEW_CLICKS_TABLE = """
create temp table if not exists clicks_new (
    click_id text, clicked_at timestamptz, org_id uuid, offer_id uuid, affiliate_id uuid,
    sub1 text, ip inet, user_agent text, country text, device_type text
) on commit delete rows
"""


def click_rollup_ctes(source: str) -> str:
    """The CTEs (after ``with``) that count the clicks of ``source`` into the rollups: a table or
    CTE with the columns of ``clicks_new``, holding only clicks just inserted; ``$1`` is the
    sub1 limit. ``core.store.clicks`` runs them in its insert statement, on its ``returning``."""
    return f"""
new as (
    select n.click_id, n.clicked_at, n.org_id, n.offer_id, n.affiliate_id, o.advertiser_id, n.country,
           n.device_type, left(nullif(n.sub1, ''), {SUB1_MAX_CHARS}) as sub1_value, n.ip, n.user_agent
    from {source} n join offers o on o.org_id = n.org_id and o.id = n.offer_id
),
visitors as (
    -- a visitor's first click of the batch (click ids sort in time order), in key order
    insert into click_visitors (org_id, offer_id, day, visitor, click_id)
    select org_id, offer_id, day, visitor, min(click_id collate "C") from (
        select org_id, offer_id, (clicked_at at time zone 'UTC')::date as day, click_id,
               {_VISITOR} as visitor
        from new
    ) v
    group by org_id, day, offer_id, visitor
    order by org_id, day, offer_id, visitor
    on conflict do nothing
    returning click_id
),
room as (
    select o.org_id, o.offer_id,
           $1::int - (select count(*) from stats_sub1_values v where v.org_id = o.org_id and v.offer_id = o.offer_id)
               as free
    from (select distinct org_id, offer_id from new where sub1_value is not null) o
),
unseen as (
    select distinct n.org_id, n.offer_id, n.sub1_value as sub1
    from new n join room r on r.org_id = n.org_id and r.offer_id = n.offer_id and r.free > 0
    where n.sub1_value is not null and not exists (
        select from stats_sub1_values v where v.org_id = n.org_id and v.offer_id = n.offer_id and v.sub1 = n.sub1_value)
),
admitted as (
    insert into stats_sub1_values as t (org_id, offer_id, sub1)
    select org_id, offer_id, sub1 from (
        select u.*, r.free, row_number() over (partition by u.org_id, u.offer_id order by u.sub1) as nth
        from unseen u join room r using (org_id, offer_id)
    ) ranked
    where nth <= free
    order by org_id, offer_id, sub1
    -- another batch admitting the same value at the same time: wait for it and use it
    on conflict (org_id, offer_id, sub1) do update set sub1 = excluded.sub1
    returning org_id, offer_id, sub1
),
keyed as (
    select n.org_id, date_bin(interval '900 seconds', n.clicked_at, timestamptz '1970-01-01 00:00:00+00') as at,
           n.offer_id, n.advertiser_id, n.affiliate_id, n.country::char(2) as country, n.device_type as device,
           case
               when n.sub1_value is null then null
               when exists (select from stats_sub1_values s
                            where s.org_id = n.org_id and s.offer_id = n.offer_id and s.sub1 = n.sub1_value)
                    or exists (select from admitted a
                               where a.org_id = n.org_id and a.offer_id = n.offer_id and a.sub1 = n.sub1_value)
               then n.sub1_value
               else '{SUB1_OTHER}'
           end as sub1,
           v.click_id is not null as unique_click
    from new n left join visitors v on v.click_id = n.click_id
),
facts as (
    -- summed per 15-minute bucket and every dimension first: the tables add these up
    select org_id, at, offer_id, advertiser_id, affiliate_id, ''::text as goal_key, country, device, sub1,
           null::char(3) as currency, count(*) as clicks, count(*) filter (where unique_click) as unique_clicks,
           0 as conversions_pending, 0 as conversions_approved, 0 as conversions_rejected,
           0 as conversions_reversed, 0 as fraud_flagged, 0 as revenue_minor, 0 as payout_minor
    from keyed
    group by org_id, at, offer_id, advertiser_id, affiliate_id, country, device, sub1
),
{_upserts("facts")}
"""


_ROLL_UP_CLICKS = f"with {click_rollup_ctes('clicks_new')} select coalesce(sum(clicks), 0) from facts"


async def roll_up_new_clicks(conn: asyncpg.Connection, sub1_limit: int = DEFAULT_SUB1_LIMIT) -> int:
    """Count the clicks in ``clicks_new`` into the rollups; return how many were counted."""
    return await conn.fetchval(_ROLL_UP_CLICKS, sub1_limit)


_STATUS_COUNT = "(case when h.to_status = '{s}' then 1 else 0 end - case when h.from_status = '{s}' then 1 else 0 end)"

_ROLL_UP_HISTORY = f"""
with h as (
    select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::bigint[], $6::bigint[])
        as h (org_id, conversion_id, from_status, to_status, revenue_delta_minor, payout_delta_minor)
),
facts as (
    select c.org_id, c.received_at as at, c.offer_id, c.advertiser_id, c.affiliate_id, c.goal_key,
           c.click_country as country, c.device_type as device,
           case
               when c.sub1 is null then null
               when exists (select from stats_sub1_values v
                            where v.org_id = c.org_id and v.offer_id = c.offer_id and v.sub1 = c.sub1)
               then c.sub1
               else '{SUB1_OTHER}'
           end as sub1,
           c.currency, 0 as clicks, 0 as unique_clicks,
           {_STATUS_COUNT.format(s="pending")} as conversions_pending,
           {_STATUS_COUNT.format(s="approved")} as conversions_approved,
           {_STATUS_COUNT.format(s="rejected")} as conversions_rejected,
           {_STATUS_COUNT.format(s="reversed")} as conversions_reversed,
           (h.from_status is null and cardinality(c.fraud_flags) > 0)::int as fraud_flagged,
           h.revenue_delta_minor as revenue_minor, h.payout_delta_minor as payout_minor
    from h join conversions c on c.org_id = h.org_id and c.id = h.conversion_id
),
{_upserts("facts")}
select count(*) from facts
"""


async def roll_up_history(conn: asyncpg.Connection, rows: Sequence[HistoryRow]) -> None:
    """Count the status history ``rows`` (just inserted by the caller) into the rollups."""
    if rows:
        await conn.execute(
            _ROLL_UP_HISTORY,
            [h.org_id for h in rows], [h.conversion_id for h in rows], [h.from_status for h in rows],
            [h.to_status for h in rows], [h.revenue_delta_minor for h in rows], [h.payout_delta_minor for h in rows],
        )


def visitors_cutoff(today: dt.date) -> dt.date:
    """The first UTC day whose visitors are still kept."""
    return today - dt.timedelta(days=VISITOR_DAYS_KEPT - 1)


async def delete_past_visitors(conn: asyncpg.Connection, before: dt.date, *, limit_rows: int) -> int:
    """Forget up to ``limit_rows`` visitors of days before ``before`` (every organization)."""
    return int((await conn.execute(
        "delete from click_visitors where ctid = any(array(select ctid from click_visitors where day < $1 limit $2))",
        before, limit_rows)).split()[-1])
