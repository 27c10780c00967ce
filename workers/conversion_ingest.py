"""The conversion worker: postbacks from the conversions streams into Postgres.

Contract
- **Exactly once per order**: one batch (entries from ``keys.conversion_streams()``, plus
  the waits that are due) is applied in ONE transaction (``workers.conversion_apply``):
  conversions, status history, waits, outbox events, counters, usage. Entries are acked
  only after it commits; a redelivered entry finds its order stored and changes nothing.
- **Poison entries** (``workers.conversion_entries``: wrong version, undecodable, a
  postback that breaks the record's contract) go to ``keys.conversion_dead_letters``
  with the reason and are acked; the rest of the batch is applied. A batch Postgres
  refuses for its data is applied one by one (each due wait, then each entry) so one
  bad postback cannot hold the rest; a refused wait is dead-lettered with ``stream``
  ``conversion_waits`` and its postback as a one-record entry, and its row removed.
- **Conflicts** between consumers (a deadlock on counters, two inserting the same new
  order) roll the transaction back; the batch is applied again.
- **Dead consumers**: on its first cycle a consumer re-reads what its name left pending;
  every ``ingest_reclaim_interval_ms`` it takes over entries idle for
  ``ingest_reclaim_idle_ms`` on any consumer.
- **Waits** are retried every cycle, also when no new entry arrives.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import time
from typing import Callable

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from core.fraud_rules import CidrList
from core.models import CONVERSION_BATCH_VERSION, PostbackRecord, postback_batch_encoder
from core.redis_keys import RedisKeys
from core.settings import Settings
from core.store.conversion_waits import take_due_waits
from core.store.errors import is_data_error
from workers.click_entries import entry_click_count
from workers.click_ingest import default_consumer_name
from workers.click_streams import ClickStreams, StreamEntry, dead_letter_fields
from workers.conversion_apply import Applied, apply_postbacks
from workers.conversion_entries import Rejected, decode_conversion_entry
from workers.conversion_metrics import ConversionMetrics

log = logging.getLogger(__name__)

_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError, asyncpg.UniqueViolationError)
_ATTEMPTS = 5
WAITS_SOURCE = "conversion_waits"  # a dead-lettered wait's ``stream``: it came from that table


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def make_conversion_consumers(
    settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, keys: RedisKeys, *,
    datacenter: CidrList | None = None, metrics: ConversionMetrics | None = None,
) -> list["ConversionIngest"]:
    base = settings.consumer_name or default_consumer_name()
    metrics = metrics or ConversionMetrics()
    return [
        ConversionIngest(settings, pool, redis, keys, consumer=f"{base}-conv-{n}", datacenter=datacenter,
                         metrics=metrics)
        for n in range(max(1, settings.conversion_concurrency))
    ]


class ConversionIngest:
    def __init__(
        self, settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, keys: RedisKeys, *,
        consumer: str | None = None, datacenter: CidrList | None = None, metrics: ConversionMetrics | None = None,
        clock: Callable[[], dt.datetime] = utc_now,
    ):
        self.settings = settings
        self.pool = pool
        self.streams = ClickStreams(
            redis, keys, settings.conversion_group, consumer or f"{default_consumer_name()}-conv",
            names=keys.conversion_streams(), dead_letters=keys.conversion_dead_letters,
        )
        self.datacenter = datacenter
        self.metrics = metrics or ConversionMetrics()
        self.clock = clock
        self._groups_ready = False
        self._recover_own = True
        self._next_reclaim_s = -math.inf
        self._last_read = 0
        self._per_entry = max(1, settings.postback_batch_max)  # pessimistic until seen

    async def run_once(self) -> Applied:
        """One cycle: collect entries, apply them with the due waits, ack. Raises on failure."""
        try:
            if not self._groups_ready:
                await self.streams.ensure_groups()
                self._groups_ready = True
            entries = await self._collect()
            applied = await self._apply(entries)
        except ResponseError as exc:
            if "NOGROUP" in str(exc):
                self._groups_ready = False
            self._recover_own = True
            raise
        except BaseException:
            self._recover_own = True
            raise
        if entries:
            await self.streams.trim_acknowledged()
        return applied

    async def run_forever(self, stop: asyncio.Event) -> None:
        backoff_ms = 100.0
        while not stop.is_set():
            try:
                await self.run_once()
                backoff_ms = 100.0
            except Exception:
                log.exception("conversion cycle failed; retrying in %.0f ms", backoff_ms)
                try:
                    await asyncio.wait_for(stop.wait(), backoff_ms / 1000)
                except asyncio.TimeoutError:
                    pass
                backoff_ms = min(backoff_ms * 2, self.settings.ingest_retry_max_backoff_ms)

    async def drain(self) -> Applied:
        """Run cycles until one reads nothing and retries no wait (tests, benchmarks)."""
        total = Applied()
        while True:
            applied = await self.run_once()
            total.merge(applied)
            if not self._last_read and not applied.retried:
                return total

    # -- collecting ------------------------------------------------------------------

    async def _collect(self) -> list[StreamEntry]:
        """Up to about ``conversion_batch_max`` postbacks: this name's leftovers first, then
        entries idle on dead consumers, then new ones (waiting briefly when there are none)."""
        limit = self.settings.conversion_batch_max
        batch: dict[tuple[str, str], StreamEntry] = {}
        records = 0

        def add(got: list[StreamEntry]) -> bool:
            nonlocal records
            fresh = [e for e in got if (e.stream, e.entry_id) not in batch]
            sizes = [entry_click_count(e.fields, b"p") for e in fresh]
            for entry in fresh:
                batch[(entry.stream, entry.entry_id)] = entry
            records += sum(sizes)
            if sizes:  # the largest entry of the last read: overshoot stays within one read's spread
                self._per_entry = max(1, max(sizes))
            return bool(fresh)

        def wanted() -> int:  # entries to ask for so the batch lands near the limit
            return max(1, min(math.ceil((limit - records) / self._per_entry), 1000))

        if self._recover_own:
            after: dict[str, str] = {}
            while records < limit:
                got = await self.streams.read_own_pending(wanted(), after)
                for entry in got:
                    after[entry.stream] = entry.entry_id
                if not add(got):
                    break
            self._recover_own = records >= limit  # a full batch: more may be left for the next cycle
        if records < limit and time.monotonic() >= self._next_reclaim_s:
            add(await self.streams.reclaim(self.settings.ingest_reclaim_idle_ms, wanted()))
            self._next_reclaim_s = time.monotonic() + self.settings.ingest_reclaim_interval_ms / 1000
        block_ms = self.settings.conversion_batch_max_wait_ms if not batch else None
        while records < limit:
            # Block for new entries only when there is nothing yet (waits are due every cycle).
            if not add(await self.streams.read_new(wanted(), block_ms=block_ms)):
                break
            block_ms = None
        self._last_read = len(batch)
        return list(batch.values())

    # -- applying --------------------------------------------------------------------

    async def _apply(self, entries: list[StreamEntry]) -> Applied:
        decoded: list[tuple[StreamEntry, list[PostbackRecord]]] = []
        rejected: list[tuple[StreamEntry, str]] = []
        for entry in entries:
            result = decode_conversion_entry(entry.fields)
            if isinstance(result, Rejected):
                rejected.append((entry, result.reason))
            else:
                decoded.append((entry, result))
        await self._dead_letter(rejected)
        records = [r for _, rs in decoded for r in rs]
        try:
            applied = await self._transaction(records)
        except Exception as exc:
            if not is_data_error(exc):
                raise
            log.warning("conversion batch rejected by Postgres (%s); applying it one by one", exc)
            return await self._apply_one_by_one(decoded)
        await self.streams.ack([entry for entry, _ in decoded])
        return applied

    async def _apply_one_by_one(self, decoded: list[tuple[StreamEntry, list[PostbackRecord]]]) -> Applied:
        """Each due wait, then each entry, in its own transaction: only what Postgres
        refuses is dead-lettered, and a refused wait cannot take new entries with it."""
        applied = await self._apply_waits_one_by_one()
        for entry, records in decoded:
            try:
                one = await self._transaction(records, waits_max=0)
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                await self._dead_letter([(entry, f"rejected by Postgres: {exc}")])
                continue
            await self.streams.ack([entry])
            applied.merge(one)
        return applied

    async def _apply_waits_one_by_one(self) -> Applied:
        applied = Applied()
        for _ in range(self.settings.conversion_batch_max):
            async with self.pool.acquire() as conn, conn.transaction():
                due = await take_due_waits(conn, self.clock(), 1)
                if not due:
                    break
                try:
                    async with conn.transaction():  # a savepoint: refused, the wait stays taken
                        one = await apply_postbacks(conn, due, settings=self.settings, now=self.clock(),
                                                    datacenter=self.datacenter, waits_max=0)
                except Exception as exc:
                    if not is_data_error(exc):
                        raise
                    # Dead-lettered before the commit removes the wait: a crash between
                    # leaves a copy behind, never nothing.
                    await self._dead_letter_wait(due[0], f"rejected by Postgres: {exc}")
                    one = None
                committed_at = await conn.fetchval("select clock_timestamp()")
            applied.retried += 1
            if one is not None:
                self.metrics.observe(one, committed_at)
                applied.merge(one)
        return applied

    async def _transaction(self, records: list[PostbackRecord], waits_max: int | None = None) -> Applied:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    applied = await apply_postbacks(
                        conn, records, settings=self.settings, now=self.clock(), datacenter=self.datacenter,
                        waits_max=waits_max)
                    committed_at = await conn.fetchval("select clock_timestamp()")
            except _RETRYABLE as exc:
                if attempt == _ATTEMPTS:
                    raise
                log.info("conversion batch conflicted with another consumer (%s); retrying", type(exc).__name__)
                await asyncio.sleep(0.01 * attempt)
                continue
            self.metrics.observe(applied, committed_at)
            return applied
        raise AssertionError("unreachable")

    async def _dead_letter_wait(self, record: PostbackRecord, reason: str) -> None:
        log.warning("dead-lettering waiting postback %s: %s", record.postback_id, reason)
        fields = {b"v": CONVERSION_BATCH_VERSION, b"p": postback_batch_encoder.encode([record])}
        entry = StreamEntry(WAITS_SOURCE, record.postback_id, fields)
        await self.streams.redis.xadd(self.streams.dead_letters, dead_letter_fields(entry, reason))
        self.metrics.dead_letter(1)

    async def _dead_letter(self, rejected: list[tuple[StreamEntry, str]]) -> None:
        if rejected:
            for entry, reason in rejected:
                log.warning("dead-lettering %s %s: %s", entry.stream, entry.entry_id, reason)
            await self.streams.dead_letter(rejected)
            self.metrics.dead_letter(len(rejected))
