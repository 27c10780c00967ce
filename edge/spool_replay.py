"""Replay of spooled batches (clicks or postbacks) into their stream once Redis answers again.

Every ``interval_s``: if the spool directory holds files and Redis answers PING, seal
this process's active file, claim every unlocked file (see ``edge.spool``), XADD its
batches and delete it. A crash between the XADD and the delete replays the file again
later; that is safe because the ingest worker is idempotent on click id, and the
conversion worker on the advertiser's external id.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from edge.committer import CLICKS, EntryFormat, write_batches
from edge.spool import Spool

log = logging.getLogger(__name__)

BATCHES_PER_PIPELINE = 100
REPLAY_TIMEOUT_S = 10.0


async def replay_spool(
    spool: Spool, redis: aioredis.Redis, stream: str, ping_timeout_s: float, fmt: EntryFormat = CLICKS,
) -> int:
    """Move every claimable spooled batch into ``stream``; return the batch count."""
    if not await asyncio.to_thread(spool.has_files):
        return 0
    try:
        async with asyncio.timeout(ping_timeout_s):
            await redis.ping()
    except (TimeoutError, RedisError, OSError):
        return 0
    await asyncio.to_thread(spool.seal)
    claimed = await asyncio.to_thread(spool.claim)
    replayed = 0
    try:
        while claimed:
            spool_file = claimed[0]
            batches = await asyncio.to_thread(spool_file.read_batches)
            for i in range(0, len(batches), BATCHES_PER_PIPELINE):
                async with asyncio.timeout(REPLAY_TIMEOUT_S):
                    await write_batches(redis, stream, batches[i : i + BATCHES_PER_PIPELINE], fmt)
            await asyncio.to_thread(spool_file.delete)
            claimed.pop(0)
            replayed += len(batches)
            log.info("replayed %d spooled %s batches from %s", len(batches), fmt.what, spool_file.path.name)
    finally:
        for spool_file in claimed:  # left for a later round, by us or another process
            spool_file.release()
    return replayed


async def run_spool_replay(
    spool: Spool, redis: aioredis.Redis, stream: str, *, interval_s: float, ping_timeout_s: float,
    fmt: EntryFormat = CLICKS,
) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            await replay_spool(spool, redis, stream, ping_timeout_s, fmt)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("spool replay failed; will retry")
