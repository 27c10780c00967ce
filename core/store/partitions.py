"""Daily partitions of the clicks table.

A partition covers one UTC day, ``[day 00:00, day+1 00:00)``, and is named
``{table}_pYYYYMMDD``. Creating one is idempotent and safe under concurrency: creators
of the same name serialize on an advisory lock and the loser finds it present.
Dropping one (retention) is idempotent too, and gives up rather than queue behind a
long reader: waiting for its lock would stall every writer of the table behind it.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable

import asyncpg

_PARTITIONED_TABLES = ("clicks",)

_EXISTING = """
select c.relname
from pg_inherits i
join pg_class c on c.oid = i.inhrelid
join pg_class p on p.oid = i.inhparent
where p.relname = $1 and p.relnamespace = to_regnamespace(current_schema())::oid
"""


def partition_name(table: str, day: dt.date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def partition_day(table: str, name: str) -> dt.date | None:
    """The day of a partition named by ``partition_name``; ``None`` for any other name."""
    prefix = f"{table}_p"
    if not name.startswith(prefix) or len(name) != len(prefix) + 8:
        return None
    try:
        return dt.datetime.strptime(name[len(prefix):], "%Y%m%d").date()
    except ValueError:
        return None


def days_ahead(today: dt.date, count: int) -> set[dt.date]:
    return {today + dt.timedelta(days=n) for n in range(count)}


async def existing_partitions(conn: asyncpg.Connection, table: str) -> set[str]:
    return {r["relname"] for r in await conn.fetch(_EXISTING, table)}


async def ensure_daily_partitions(conn: asyncpg.Connection, table: str, days: Iterable[dt.date]) -> list[dt.date]:
    """Create the partitions of ``table`` for ``days`` that do not exist yet; return those created.

    Costs one catalog query when every partition is already there, which is the
    steady state for the ingest worker (the maintenance job creates days ahead).
    """
    if table not in _PARTITIONED_TABLES:
        raise ValueError(f"{table} is not partitioned by day")
    present = await existing_partitions(conn, table)
    created: list[dt.date] = []
    for day in sorted(set(days)):
        name = partition_name(table, day)
        if name in present:
            continue
        if await _create_partition(conn, table, day, name):
            created.append(day)
    return created


async def _create_partition(conn: asyncpg.Connection, table: str, day: dt.date, name: str) -> bool:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(days=1)
    async with conn.transaction():
        # Concurrent creators of one name would otherwise race inside CREATE; the lock
        # makes the second one see the first one's table.
        await conn.execute("select pg_advisory_xact_lock(hashtext($1))", name)
        if await conn.fetchval("select to_regclass($1) is not null", name):
            return False
        await conn.execute(
            f"create table {name} partition of {table} "
            f"for values from ('{start.isoformat()}') to ('{end.isoformat()}')"
        )
    return True


async def existing_days(conn: asyncpg.Connection, table: str) -> set[dt.date]:
    days = (partition_day(table, name) for name in await existing_partitions(conn, table))
    return {day for day in days if day is not None}


async def drop_daily_partition(conn: asyncpg.Connection, table: str, day: dt.date, *, lock_timeout_ms: int) -> bool:
    """Drop the partition of ``table`` for ``day`` with its rows; ``False`` if the lock
    was not granted within ``lock_timeout_ms`` (nothing changed; try again later).
    A partition already gone counts as dropped."""
    if table not in _PARTITIONED_TABLES:
        raise ValueError(f"{table} is not partitioned by day")
    try:
        async with conn.transaction():
            await conn.execute(f"set local lock_timeout = {int(lock_timeout_ms)}")
            await conn.execute(f"drop table if exists {partition_name(table, day)}")
    except asyncpg.LockNotAvailableError:
        return False
    return True
