"""Group commit of clicks to the Redis stream.

Contract with the handler: ``append(record)`` returns a future that is resolved (never
failed) once the click is safe, in the stream or, when Redis could not take it in
``write_timeout_s``, in the local spool. Only then may its 302 be sent.

Concurrent clicks share one round trip: the first click of a batch schedules a flush
on the next loop iteration; while a write is in flight, new clicks gather into the
next batch; every click of a batch awaits one shared future. One flush writes one
stream entry ``v <CLICK_BATCH_VERSION> c <msgpack list[ClickRecord]>`` per
``batch_max`` clicks, in one pipeline. After a failed write, Redis is skipped for
``redis_retry_after_s`` so a dead server does not add a timeout to every batch.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.models import CLICK_BATCH_VERSION, ClickRecord, click_batch_encoder
from edge.metrics import EdgeMetrics
from edge.spool import Spool

log = logging.getLogger(__name__)


async def write_batches(redis: aioredis.Redis, stream: str, payloads: list[bytes]) -> None:
    """XADD one stream entry per encoded batch, in one round trip."""
    if len(payloads) == 1:
        await redis.execute_command("XADD", stream, "*", "v", CLICK_BATCH_VERSION, "c", payloads[0])
        return
    async with redis.pipeline(transaction=False) as pipe:
        for payload in payloads:
            pipe.execute_command("XADD", stream, "*", "v", CLICK_BATCH_VERSION, "c", payload)
        await pipe.execute()


class ClickCommitter:
    def __init__(
        self, redis: aioredis.Redis, stream: str, spool: Spool, metrics: EdgeMetrics, *,
        batch_max: int, write_timeout_s: float, redis_retry_after_s: float,
    ):
        self.redis = redis
        self.stream = stream
        self.spool = spool
        self.metrics = metrics
        self.batch_max = max(1, batch_max)
        self.write_timeout_s = write_timeout_s
        self.redis_retry_after_s = redis_retry_after_s
        self._batch: list[ClickRecord] = []
        self._batch_done: asyncio.Future | None = None
        self._flusher: asyncio.Task | None = None
        self._skip_redis_until = 0.0

    def append(self, record: ClickRecord) -> asyncio.Future:
        self._batch.append(record)
        done = self._batch_done
        if done is None:
            loop = asyncio.get_running_loop()
            done = self._batch_done = loop.create_future()
            if self._flusher is None:
                self._flusher = loop.create_task(self._flush_all())
        return done

    async def drain(self) -> None:
        """Wait until every appended click is safe (shutdown)."""
        while self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def _flush_all(self) -> None:
        try:
            await asyncio.sleep(0)  # let the clicks already scheduled join this batch
            while self._batch:
                batch, done = self._batch, self._batch_done
                self._batch, self._batch_done = [], None
                try:
                    await self._commit(batch)
                finally:
                    done.set_result(None)
        finally:
            self._flusher = None

    async def _commit(self, batch: list[ClickRecord]) -> None:
        try:
            size = self.batch_max
            payloads = [click_batch_encoder.encode(batch[i : i + size]) for i in range(0, len(batch), size)]
        except Exception:
            log.exception("could not encode %d clicks; they are lost", len(batch))
            self.metrics.lost += len(batch)
            return
        if time.monotonic() >= self._skip_redis_until:
            try:
                async with asyncio.timeout(self.write_timeout_s):
                    await write_batches(self.redis, self.stream, payloads)
                return
            except (TimeoutError, RedisError, OSError) as exc:
                log.warning("click write to Redis failed (%r); spooling %d clicks", exc, len(batch))
                self._skip_redis_until = time.monotonic() + self.redis_retry_after_s
        try:
            await asyncio.to_thread(self.spool.append, payloads)
            self.metrics.spooled += len(batch)
        except Exception:
            log.critical("could not spool %d clicks; they are LOST", len(batch), exc_info=True)
            self.metrics.lost += len(batch)
