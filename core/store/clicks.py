"""Writing clicks: bulk, idempotent.

``insert_clicks`` may be given the same records any number of times; each click id is
stored once (the primary key is ``(click_id, clicked_at)`` and ``clicked_at`` is derived
from ``ts_ms``, which the click id's prefix fixes). The rows it actually inserted are
counted into the statistics rollups in the same statement
(``core.store.stats_rollups.click_rollup_ctes`` over its ``returning``), and it returns how many it inserted
per organization, offer, affiliate and UTC day (``NewClicks``), counted in Postgres, so
the caller updates other derived data (usage, click cap counters) from new rows only,
in its transaction when there is one.

Records are copied as text into a staging table and cast in SQL, so every fault in the
data itself (a malformed uuid or inet, an over-long country, a NUL byte) surfaces as a
Postgres data error (see ``core.store.errors.is_data_error``), never as a client-side
encoding error, and aborts the whole call: nothing of it is written.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Iterable, Sequence

import asyncpg
import msgspec
from msgspec.structs import astuple

from core.models import ClickRecord
from core.store.partitions import ensure_daily_partitions
from core.store.stats_rollups import DEFAULT_SUB1_LIMIT, click_rollup_ctes

_COLUMNS = list(ClickRecord.__struct_fields__)


class NewClicks(msgspec.Struct, frozen=True):
    """The clicks one call inserted for one offer and affiliate on one UTC day."""

    org_id: uuid.UUID
    offer_id: uuid.UUID
    affiliate_id: uuid.UUID
    day: dt.date
    clicks: int
    redirects: int  # of them, sent to the offer's landing page (outcome redirect)


# (org_id, first day of the UTC month) -> clicks inserted: what usage counts.
InsertedCounts = dict[tuple[uuid.UUID, dt.date], int]


_CREATE_STAGING = """
create temp table if not exists clicks_staging (
    click_id text, ts_ms bigint, org_id text, offer_id text, affiliate_id text, link_id text,
    outcome text, sub1 text, sub2 text, sub3 text, sub4 text, sub5 text, source_id text,
    ip text, user_agent text, referer text, country text, device_type text
) on commit delete rows
"""

def _insert(on_conflict: str) -> str:
    """Insert the staged clicks, count the inserted ones into the rollups (``$1``: the sub1
    limit) and return them per organization, offer, affiliate and day: one statement."""
    return f"""
with inserted as (
insert into clicks (click_id, clicked_at, org_id, offer_id, affiliate_id, link_id, outcome,
                    sub1, sub2, sub3, sub4, sub5, source_id, ip, user_agent, referer,
                    country, device_type)
select click_id, timestamptz 'epoch' + ts_ms * interval '1 millisecond', org_id::uuid,
       offer_id::uuid, affiliate_id::uuid, link_id::uuid, outcome, sub1, sub2, sub3, sub4,
       sub5, source_id, ip::inet, user_agent, referer, country, device_type
from clicks_staging
{on_conflict}
returning click_id, clicked_at, org_id, offer_id, affiliate_id, outcome, sub1, ip, user_agent, country,
          device_type
),
{click_rollup_ctes("inserted")}
select org_id, offer_id, affiliate_id, (clicked_at at time zone 'UTC')::date as day,
       count(*) as clicks, count(*) filter (where outcome = 'redirect') as redirects
from inserted
group by 1, 2, 3, 4
"""


_INSERT_NEW = _insert("")
_INSERT_IDEMPOTENT = _insert("on conflict do nothing")


def click_day(ts_ms: int) -> dt.date:
    return (dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(milliseconds=ts_ms)).date()


def click_days(records: Iterable[ClickRecord]) -> set[dt.date]:
    return {click_day(ts_ms) for ts_ms in {r.ts_ms for r in records}}


def per_org_month(new_clicks: Iterable[NewClicks]) -> InsertedCounts:
    """``new_clicks`` summed per organization and month (what usage counts)."""
    counts: InsertedCounts = {}
    for group in new_clicks:
        key = (group.org_id, group.day.replace(day=1))
        counts[key] = counts.get(key, 0) + group.clicks
    return counts


async def insert_clicks(
    conn: asyncpg.Connection, records: Sequence[ClickRecord], *, sub1_limit: int = DEFAULT_SUB1_LIMIT,
) -> list[NewClicks]:
    """Insert ``records`` in one transaction (a savepoint inside the caller's) and count
    the new ones into the rollups (``sub1_limit``: distinct sub1 values kept per offer);
    return how many were new per organization, offer, affiliate and day (counted in
    Postgres: one row per group comes back, not one per click)."""
    if not records:
        return []
    await ensure_daily_partitions(conn, "clicks", click_days(records))
    nested = conn.is_in_transaction()
    async with conn.transaction():
        await conn.execute(_CREATE_STAGING)
        if nested:  # an outer transaction keeps earlier rows until its commit
            await conn.execute("delete from clicks_staging")
        await conn.copy_records_to_table("clicks_staging", records=map(astuple, records), columns=_COLUMNS)
        try:
            # Redelivery is rare: try the plain insert first (no speculative insertion per
            # row, measurably cheaper); on any duplicate, its savepoint rolls back and the
            # idempotent form runs instead.
            async with conn.transaction():
                rows = await conn.fetch(_INSERT_NEW, sub1_limit)
        except asyncpg.UniqueViolationError:
            rows = await conn.fetch(_INSERT_IDEMPOTENT, sub1_limit)
    return [NewClicks(*r) for r in rows]
