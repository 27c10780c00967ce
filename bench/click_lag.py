"""Click → row lag: how long a click the edge answered takes to become a ``clicks`` row.

``clicked_at`` is the edge's clock when it built the click, ``ingested_at`` Postgres'
clock when the worker's insert ran; both are this machine's clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import asyncpg
import msgspec

_COUNT = "select count(*) from clicks where clicked_at >= $1 and clicked_at < $2"

_LAG = """
select count(*) as rows,
       percentile_cont(0.5) within group (order by lag_ms) as p50_ms,
       percentile_cont(0.99) within group (order by lag_ms) as p99_ms,
       max(lag_ms) as max_ms
from (select extract(epoch from ingested_at - clicked_at)::float8 * 1000 as lag_ms
      from clicks where clicked_at >= $1 and clicked_at < $2) as lags
"""


class ClickLag(msgspec.Struct, kw_only=True):
    rows: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def utc(epoch_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_s, dt.timezone.utc)


async def wait_for_rows(
    conn: asyncpg.Connection, start: dt.datetime, end: dt.datetime, *,
    expected: int, settle_s: float = 3.0, timeout_s: float = 180,
) -> int:
    """Poll the window's row count until it reaches ``expected`` or stops moving for ``settle_s``."""
    deadline = time.monotonic() + timeout_s
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        count = await conn.fetchval(_COUNT, start, end)
        if count >= expected:
            return count
        if count != last:
            last, last_change = count, time.monotonic()
        elif time.monotonic() - last_change >= settle_s:
            return count
        await asyncio.sleep(0.25)
    return last


async def measure_click_lag(database_url: str, start_s: float, end_s: float, *, expected: int) -> ClickLag:
    """Wait for the window's clicks to drain into Postgres, then read their lag percentiles."""
    start, end = utc(start_s), utc(end_s)
    conn = await asyncpg.connect(database_url)
    try:
        await wait_for_rows(conn, start, end, expected=expected)
        row = await conn.fetchrow(_LAG, start, end)
    finally:
        await conn.close()
    return ClickLag(rows=row["rows"], p50_ms=row["p50_ms"], p99_ms=row["p99_ms"], max_ms=row["max_ms"])


async def wait_for_drain(database_url: str, start_s: float, end_s: float, *, expected: int) -> int:
    """Rows in Postgres for the window once the backlog has drained."""
    conn = await asyncpg.connect(database_url)
    try:
        return await wait_for_rows(conn, utc(start_s), utc(end_s), expected=expected)
    finally:
        await conn.close()
