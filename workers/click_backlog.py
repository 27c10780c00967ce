"""The oldest click stream entry not yet processed, for retention's guard.

An entry is unprocessed while some consumer group has it pending (delivered, not
acked) or has not been delivered it yet; a stream with no group has delivered nothing.
Every group counts, not only ingest: an entry one group still needs stays in the
stream, and so stays able to reach Postgres. Dead-lettered entries are acked and moved
out of the click streams, so they do not count.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from core.redis_keys import RedisKeys
from workers.click_streams import entry_id_key, next_entry_id


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def oldest_unprocessed_entry_ms(redis: aioredis.Redis, keys: RedisKeys) -> int | None:
    """The id time (ms) of the oldest unprocessed entry in any click stream; ``None``: none."""
    times = [ms for stream in keys.click_streams() if (ms := await _oldest_in(redis, stream)) is not None]
    return min(times, default=None)


async def _oldest_in(redis: aioredis.Redis, stream: str) -> int | None:
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return None
        raise
    # Groups before pending, as in ClickStreams trimming: an entry delivered between the
    # two reads is in the pending summary read after; one acked between them is ingested.
    starts = ["0-0"] if not groups else [next_entry_id(_text(g["last-delivered-id"])) for g in groups]
    candidates: list[str] = []
    for group in groups:
        if group["pending"]:
            summary = await redis.xpending(stream, _text(group["name"]))
            if summary["min"] is not None:
                candidates.append(_text(summary["min"]))
    for start in starts:
        first_undelivered = await redis.xrange(stream, min=start, max="+", count=1)
        if first_undelivered:
            candidates.append(_text(first_undelivered[0][0]))
    if not candidates:
        return None
    return entry_id_key(min(candidates, key=entry_id_key))[0]
