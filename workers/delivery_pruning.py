"""``prune_deliveries_job`` (hourly): the delivery tables stay bounded.

Idempotent: it deletes only rows finished (or dispatched, or expired) before the keep
period, in bounded batches; running it twice deletes nothing the second time.
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from core.store.delivery_pruning import (
    delete_dispatched_events, delete_expired_webhook_secrets, delete_finished_deliveries,
)

BATCH_ROWS = 10_000
MAX_ROWS_PER_RUN = 500_000


async def prune_deliveries(pool: asyncpg.Pool, now: dt.datetime, keep_days: int) -> dict[str, int]:
    before = now - dt.timedelta(days=keep_days)
    deleted = {"deliveries": 0, "outbox_events": 0}
    for table, delete in (("deliveries", delete_finished_deliveries), ("outbox_events", delete_dispatched_events)):
        while deleted[table] < MAX_ROWS_PER_RUN:
            async with pool.acquire() as conn:
                n = await delete(conn, before, BATCH_ROWS)
            deleted[table] += n
            if n < BATCH_ROWS:
                break
    async with pool.acquire() as conn:
        deleted["webhook_secrets"] = await delete_expired_webhook_secrets(conn, now)
    return deleted


async def prune_deliveries_job(ctx: dict) -> dict[str, int]:
    return await prune_deliveries(ctx["pool"], dt.datetime.now(dt.timezone.utc), ctx["settings"].delivery_keep_days)
