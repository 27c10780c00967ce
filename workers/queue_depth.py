"""``afftok_queue_depth``: stream entries waiting to be ingested, per stream.

The ingest consumer records it after every cycle; anything else (a /metrics endpoint,
the CLI) can call ``measure_queue_depth`` to read it from Redis directly. One entry is
one edge group commit, up to ``click_batch_max`` clicks.
"""

from __future__ import annotations

from typing import Mapping

import redis.asyncio as aioredis
from prometheus_client import Gauge

from core.redis_keys import RedisKeys

QUEUE_DEPTH = Gauge(
    "afftok_queue_depth", "Stream entries not yet acknowledged by every consumer group.", ["stream"]
)


def record_queue_depth(backlog_entries: Mapping[str, int]) -> None:
    for stream, depth in backlog_entries.items():
        QUEUE_DEPTH.labels(stream=stream).set(depth)


async def measure_queue_depth(redis: aioredis.Redis, keys: RedisKeys) -> dict[str, int]:
    """Backlog per click stream, recorded in the gauge and returned.

    The ingest consumer trims exactly what every group acked, so a stream holds the
    entries still needed plus, behind an old entry stuck pending, acked ones that
    trimming (a prefix cut) cannot reach yet: an upper bound, exact in the steady state.
    """
    streams = keys.click_streams()
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xlen(stream)
        lengths = await pipe.execute()
    depth = dict(zip(streams, lengths))
    record_queue_depth(depth)
    return depth
