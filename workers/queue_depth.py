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

    Exact while the ingest consumer trims exactly what every group acked: the stream
    then holds only entries some group still needs.
    """
    streams = keys.click_streams()
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xlen(stream)
        lengths = await pipe.execute()
    depth = dict(zip(streams, lengths))
    record_queue_depth(depth)
    return depth
