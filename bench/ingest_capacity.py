"""Ingest capacity: clicks per second one ingest worker moves from Redis to Postgres.

A backlog of click batches in the edge's exact wire format is written to streams under a
key prefix of its own, then one worker's consumers (``ingest_concurrency`` of them, as
``afftok worker`` runs them) drain it with nothing else loaded. The clock runs from
their first cycle until every click is a row.
"""

from __future__ import annotations

import asyncio
import os
import time

import asyncpg
import msgspec
import redis.asyncio as aioredis

from core.ids import new_click_id
from core.models import CLICK_BATCH_VERSION, REDIRECT, ClickRecord, click_batch_encoder
from core.redis_keys import RedisKeys
from core.settings import load_settings
from workers.click_ingest import ClickIngest, make_consumers

_USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


class IngestCapacity(msgspec.Struct, kw_only=True):
    clicks: int
    inserted: int
    seconds: float
    clicks_per_s: float


def _batch(link: asyncpg.Record, org_id: str, size: int, serial: int) -> bytes:
    now_ms = time.time_ns() // 1_000_000
    records = [
        ClickRecord(
            new_click_id(now_ms), now_ms, org_id, str(link["offer_id"]), str(link["affiliate_id"]), str(link["id"]),
            REDIRECT, f"s{serial}-{n}", "bench", None, None, None, None, "203.0.113.7", _USER_AGENT,
            "https://publisher.example/article", "US", "desktop",
        )
        for n in range(size)
    ]
    return click_batch_encoder.encode(records)


async def _write_backlog(redis: aioredis.Redis, stream: str, link: asyncpg.Record, org_id: str, clicks: int, batch_size: int) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        for serial in range(clicks // batch_size):
            pipe.execute_command("XADD", stream, "*", "v", CLICK_BATCH_VERSION, "c", _batch(link, org_id, batch_size, serial))
        await pipe.execute()


async def _drain_timed(consumers: list[ClickIngest], clicks: int, timeout_s: float) -> tuple[int, float]:
    """Run one worker's consumers side by side until every click is a row."""
    inserted, started = 0, time.perf_counter()

    async def consume(ingest: ClickIngest) -> None:
        nonlocal inserted
        while inserted < clicks and time.perf_counter() - started < timeout_s:
            counts = await ingest.run_once()  # not `inserted += await …`: that reads first
            inserted += counts.clicks_inserted

    await asyncio.gather(*(consume(c) for c in consumers))
    return inserted, time.perf_counter() - started


async def measure_ingest_capacity(
    database_url: str, redis_url: str, org_id: str, *, clicks: int = 200_000, batch_size: int = 1000, timeout_s: float = 300,
) -> IngestCapacity:
    prefix = f"afftok-bench-{os.getpid()}-{time.time_ns()}"
    settings = load_settings(database_url=database_url, redis_url=redis_url, redis_prefix=prefix)
    keys = RedisKeys(prefix, 1)
    clicks -= clicks % batch_size
    redis = aioredis.Redis.from_url(redis_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=settings.ingest_concurrency + 1)
    try:
        link = await pool.fetchrow("select id, offer_id, affiliate_id from links where org_id = $1 limit 1", org_id)
        await _write_backlog(redis, keys.click_stream(0), link, org_id, clicks, batch_size)
        worker_settings = msgspec.structs.replace(settings, click_stream_shards=1, consumer_name="bench")
        consumers = make_consumers(worker_settings, pool, redis, keys)
        inserted, seconds = await _drain_timed(consumers, clicks, timeout_s)
    finally:
        await redis.delete(*keys.click_streams(), keys.click_dead_letters)
        await pool.close()
        await redis.aclose()
    return IngestCapacity(clicks=clicks, inserted=inserted, seconds=seconds, clicks_per_s=inserted / seconds)
