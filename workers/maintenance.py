"""Maintenance jobs. Each one is idempotent: running it twice changes nothing the second time.

- ``create_click_partitions``: the daily ``clicks`` partitions for today and the next
  ``days_ahead - 1`` days exist afterwards. Creating is the only effect; a partition
  that exists is left alone. (The ingest consumer also creates a missing day on demand,
  so a stopped scheduler delays nothing; this keeps DDL off the ingest path.)
- ``resync_link_configs``: the Redis hash of link configs equals Postgres afterwards,
  and every edge is told to reload. Repairs a flushed or restarted Redis.

The ``*_job`` functions are the arq entry points; they take what they need from the
worker context built in ``workers.settings``.
"""

from __future__ import annotations

import datetime as dt
import logging

import asyncpg
import redis.asyncio as aioredis

from core.redis_keys import RedisKeys
from core.store.link_configs import sync_all_links
from core.store.partitions import days_ahead, ensure_daily_partitions

log = logging.getLogger(__name__)


async def create_click_partitions(pool: asyncpg.Pool, *, today: dt.date, days_ahead_count: int) -> list[dt.date]:
    """Ensure the partitions for ``today`` and the following days; return the days created now."""
    async with pool.acquire() as conn:
        created = await ensure_daily_partitions(conn, "clicks", days_ahead(today, days_ahead_count))
    if created:
        log.info("created clicks partitions for %s", ", ".join(map(str, created)))
    return created


async def resync_link_configs(pool: asyncpg.Pool, redis: aioredis.Redis, keys: RedisKeys) -> int:
    """Rewrite the link config hash from Postgres; return the number of links published."""
    async with pool.acquire() as conn:
        return await sync_all_links(conn, redis, keys)


def utc_today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


async def create_click_partitions_job(ctx: dict) -> list[str]:
    created = await create_click_partitions(
        ctx["pool"], today=ctx.get("today", utc_today)(), days_ahead_count=ctx["settings"].partition_days_ahead
    )
    return [d.isoformat() for d in created]


async def resync_link_configs_job(ctx: dict) -> int:
    return await resync_link_configs(ctx["pool"], ctx["redis"], ctx["keys"])
