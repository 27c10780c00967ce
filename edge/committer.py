"""Group commit of clicks (and accepted postbacks) to a Redis stream.

Contract with the handler: ``append(record)`` returns a future that is resolved (never
failed) once the record is safe, in the stream or, when Redis could not take it in
``write_timeout_s``, in the local spool. Only then may its 302 (or 202) be sent.

Concurrent clicks share one round trip: the first click of a batch schedules a flush
on the next loop iteration; while a write is in flight, new clicks gather into the
next batch; every click of a batch awaits one shared future. One flush writes one
stream entry ``v <CLICK_BATCH_VERSION> c <msgpack list[ClickRecord]>`` per
``batch_max`` clicks, in one pipeline (postbacks: ``v <CONVERSION_BATCH_VERSION> p
<msgpack list[PostbackRecord]>``, the ``POSTBACKS`` format). After a failed write, Redis is skipped for
``redis_retry_after_s`` so a dead server does not add a timeout to every batch.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from typing import Protocol

import msgspec

from core.models import CLICK_BATCH_VERSION, CONVERSION_BATCH_VERSION, click_batch_encoder, postback_batch_encoder
from edge.spool import Spool

log = logging.getLogger(__name__)


class EntryFormat(msgspec.Struct, frozen=True):
    """How one kind of record is written to its stream: ``v <version> <field> <msgpack list>``."""

    what: str  # for logs: "clicks", "postbacks"
    version: bytes
    field: bytes
    encoder: msgspec.msgpack.Encoder


CLICKS = EntryFormat("clicks", CLICK_BATCH_VERSION, b"c", click_batch_encoder)
POSTBACKS = EntryFormat("postbacks", CONVERSION_BATCH_VERSION, b"p", postback_batch_encoder)


class SpoolCounts(Protocol):
    spooled: int
    lost: int


async def write_batches(redis: aioredis.Redis, stream: str, payloads: list[bytes], fmt: EntryFormat = CLICKS) -> None:
    """XADD one stream entry per encoded batch, in one round trip."""
    if len(payloads) == 1:
        await redis.execute_command("XADD", stream, "*", "v", fmt.version, fmt.field, payloads[0])
        return
    async with redis.pipeline(transaction=False) as pipe:
        for payload in payloads:
            pipe.execute_command("XADD", stream, "*", "v", fmt.version, fmt.field, payload)
        await pipe.execute()


class GroupCommitter:
    def __init__(
        self, redis: aioredis.Redis, stream: str, spool: Spool, metrics: SpoolCounts, *,
        batch_max: int, write_timeout_s: float, redis_retry_after_s: float, fmt: EntryFormat = CLICKS,
    ):
        self.redis = redis
        self.stream = stream
        self.spool = spool
        self.metrics = metrics
        self.fmt = fmt
        self.batch_max = max(1, batch_max)
        self.write_timeout_s = write_timeout_s
        self.redis_retry_after_s = redis_retry_after_s
        self._batch: list = []
        self._batch_done: asyncio.Future | None = None
        self._flusher: asyncio.Task | None = None
        self._skip_redis_until = 0.0

    def append(self, record) -> asyncio.Future:
        self._batch.append(record)
        done = self._batch_done
        if done is None:
            loop = asyncio.get_running_loop()
            done = self._batch_done = loop.create_future()
            if self._flusher is None:
                self._flusher = loop.create_task(self._flush_all())
        return done

    async def drain(self) -> None:
        """Wait until every appended record is safe (shutdown)."""
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

    async def _commit(self, batch: list) -> None:
        what = self.fmt.what
        try:
            size, encode = self.batch_max, self.fmt.encoder.encode
            payloads = [encode(batch[i : i + size]) for i in range(0, len(batch), size)]
        except Exception:
            log.exception("could not encode %d %s; they are lost", len(batch), what)
            self.metrics.lost += len(batch)
            return
        if time.monotonic() >= self._skip_redis_until:
            try:
                async with asyncio.timeout(self.write_timeout_s):
                    await write_batches(self.redis, self.stream, payloads, self.fmt)
                return
            except (TimeoutError, RedisError, OSError) as exc:
                log.warning("%s write to Redis failed (%r); spooling %d of them", what, exc, len(batch))
                self._skip_redis_until = time.monotonic() + self.redis_retry_after_s
        try:
            await asyncio.to_thread(self.spool.append, payloads)
            self.metrics.spooled += len(batch)
        except Exception:
            log.critical("could not spool %d %s; they are LOST", len(batch), what, exc_info=True)
            self.metrics.lost += len(batch)
