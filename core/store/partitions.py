"""Daily partitions of the clicks table."""

from __future__ import annotations

import datetime as dt

import asyncpg

_PARTITIONED_TABLES = ("clicks",)


def partition_name(table: str, day: dt.date) -> str:
    return f"{table}_p{day:%Y%m%d}"


async def ensure_daily_partitions(conn: asyncpg.Connection, table: str, days: set[dt.date]) -> None:
    """Create the partitions of ``table`` for ``days`` that do not exist yet. Idempotent."""
    if table not in _PARTITIONED_TABLES:
        raise ValueError(f"{table} is not partitioned by day")
    for day in sorted(days):
        start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
        end = start + dt.timedelta(days=1)
        name = partition_name(table, day)
        # Postgres serializes concurrent creators on the parent's lock; IF NOT EXISTS
        # makes the loser a no-op, and the advisory lock keeps it from erroring.
        async with conn.transaction():
            await conn.execute("select pg_advisory_xact_lock(hashtext($1))", name)
            await conn.execute(
                f"create table if not exists {name} partition of {table} "
                f"for values from ('{start.isoformat()}') to ('{end.isoformat()}')"
            )


def days_ahead(today: dt.date, count: int) -> set[dt.date]:
    return {today + dt.timedelta(days=n) for n in range(count)}
