"""The click ingest consumer: click streams in, ``clicks`` rows out.

Contract
--------
- **At-least-once in.** Entries are read through the consumer group
  ``settings.ingest_group``. An entry is acked only after the Postgres transaction that
  wrote its clicks has committed (or after it was copied to the dead-letter stream).
  A consumer that dies at any point leaves its entries pending; it re-reads them itself
  when it restarts under the same name, and any consumer takes them over with
  XAUTOCLAIM once they have been idle ``ingest_reclaim_idle_ms``.
- **Exactly-once rows out.** Applying an entry twice writes nothing the second time
  (``core.store.clicks.insert_clicks`` is idempotent per click id), so redelivery after
  a crash between commit and ack, or two consumers racing on a reclaimed entry, never
  duplicates a row.
- **Usage counted once.** The transaction that inserts a batch's clicks also adds the
  clicks it actually inserted to their organizations' monthly usage
  (``core.store.usage.record_tracked_events``), so a redelivered entry counts nothing
  again. Usage never holds a click back: over its plan's limit a click is stored and
  counted as overage like any other.
- **Click caps counted once, the same way** (``core.store.click_counters``). When the
  transaction takes a cap's counter to its limit, the links under that cap are
  republished to Redis after the commit (before the ack), so the edges send the next
  clicks to the fallback. A failed republish is logged, not retried here: the link
  config resync (every five minutes) publishes the cap, meanwhile the clicks over it
  are stored and counted as usual.
- **Batches** close at ``ingest_batch_max`` clicks or ``ingest_batch_max_wait_ms`` after
  the cycle began, whichever comes first; one batch is one transaction.
- **Poison entries** (wrong or missing version, bad msgpack, a record that breaks the
  schema, or data Postgres rejects such as an invalid inet) are copied to
  ``keys.click_dead_letters`` with fields ``stream``, ``id``, ``reason`` and the
  original fields, and acked in the same Redis transaction. When Postgres rejects a
  batch for its data, the batch is re-applied entry by entry so only the bad entries
  are dead-lettered. Dead letters are never trimmed; replaying one is an operator's act.
- **Postgres away** (connection refused or lost, any error that is not the data's
  fault): nothing of the batch is acked; ``run_once`` raises, ``run_forever`` backs off
  (doubling up to ``ingest_retry_max_backoff_ms``) and re-reads its own pending entries.
- **Trimming** removes only entries every group has acked (see
  ``ClickStreams.trim_acknowledged``), so a stream's length is its backlog.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
from typing import Callable, Iterable, Sequence

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from core.models import ClickRecord
from core.redis_keys import RedisKeys
from core.settings import Settings
from core.store.click_counters import CrossedCap, count_capped_clicks
from core.store.clicks import insert_clicks, per_org_month
from core.store.errors import is_data_error
from core.store.link_configs import load_link_configs, publish_links
from core.store.usage import record_tracked_events
from workers.click_entries import Rejected, decode_click_entry, entry_click_count
from workers.click_streams import ClickStreams, StreamEntry
from workers.queue_depth import measure_queue_depth

log = logging.getLogger(__name__)

Clock = Callable[[], float]  # milliseconds, monotonic


def monotonic_ms() -> float:
    return time.monotonic() * 1000


def default_consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def make_consumers(settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, keys: RedisKeys) -> list["ClickIngest"]:
    """The ``ingest_concurrency`` consumers of one worker process, each under its own name,
    so one can read and decode while another's transaction commits."""
    base = settings.consumer_name or default_consumer_name()
    return [ClickIngest(settings, pool, redis, keys, consumer=f"{base}-{n}") for n in range(max(1, settings.ingest_concurrency))]


class IngestCounts(msgspec.Struct):
    entries_read: int = 0
    clicks_read: int = 0  # in decodable entries
    clicks_inserted: int = 0
    clicks_duplicate: int = 0  # already in Postgres, or repeated within the batch
    entries_dead_lettered: int = 0


class _Decoded(msgspec.Struct):
    entry: StreamEntry
    records: list[ClickRecord]


class ClickIngest:
    def __init__(
        self, settings: Settings, pool: asyncpg.Pool, redis: aioredis.Redis, keys: RedisKeys,
        *, consumer: str | None = None, clock_ms: Clock = monotonic_ms,
    ):
        self.settings = settings
        self.pool = pool
        self.keys = keys
        self.streams = ClickStreams(
            redis, keys, settings.ingest_group, consumer or settings.consumer_name or default_consumer_name()
        )
        self.clock_ms = clock_ms
        self._groups_ready = False
        self._recover_own = True  # first cycle re-reads what this name left pending
        self._next_reclaim_ms = -math.inf
        self._clicks_per_entry = max(1, settings.click_batch_max)  # pessimistic until seen

    async def run_once(self) -> IngestCounts:
        """One batch cycle: collect, apply, ack, trim. Raises if Postgres or Redis failed."""
        try:
            if not self._groups_ready:
                await self.streams.ensure_groups()
                self._groups_ready = True
            entries = await self._collect()
            counts = await self._apply(entries) if entries else IngestCounts()
        except ResponseError as exc:
            if "NOGROUP" in str(exc):  # Redis lost the stream (flush, restart without data)
                self._groups_ready = False
            self._recover_own = True
            raise
        except BaseException:
            self._recover_own = True
            raise
        if entries:
            await self.streams.trim_acknowledged()
        await measure_queue_depth(self.streams.redis, self.streams.keys)
        return counts

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Run cycles until ``stop`` is set; the cycle under way finishes first."""
        backoff_ms = 100.0
        while not stop.is_set():
            try:
                await self.run_once()
                backoff_ms = 100.0
            except Exception:
                log.exception("click ingest cycle failed; retrying in %.0f ms", backoff_ms)
                try:
                    await asyncio.wait_for(stop.wait(), backoff_ms / 1000)
                except asyncio.TimeoutError:
                    pass
                backoff_ms = min(backoff_ms * 2, self.settings.ingest_retry_max_backoff_ms)

    async def drain(self) -> IngestCounts:
        """Run cycles until one reads nothing; return the totals (burst mode, benchmarks)."""
        total = IngestCounts()
        while True:
            counts = await self.run_once()
            if not counts.entries_read:
                return total
            for field in IngestCounts.__struct_fields__:
                setattr(total, field, getattr(total, field) + getattr(counts, field))

    # -- collecting ------------------------------------------------------------------

    async def _collect(self) -> list[StreamEntry]:
        deadline_ms = self.clock_ms() + self.settings.ingest_batch_max_wait_ms
        batch: dict[tuple[str, str], StreamEntry] = {}
        if self._recover_own:
            self._recover_own = await self._fill(batch, self._own_pending_reader())
        if self.clock_ms() >= self._next_reclaim_ms:
            idle_ms = self.settings.ingest_reclaim_idle_ms
            more = await self._fill(batch, lambda count: self.streams.reclaim(idle_ms, count))
            # A full batch of reclaimed entries means more may wait: reclaim next cycle too.
            self._next_reclaim_ms = self.clock_ms() + (0 if more else self.settings.ingest_reclaim_interval_ms)
        first_read = True
        while (clicks := _clicks_in(batch.values())) < self.settings.ingest_batch_max:
            remaining_ms = int(deadline_ms - self.clock_ms())
            if remaining_ms <= 0 and not first_read:
                break
            # Every cycle looks at new entries at least once, without blocking if time is up.
            got = await self.streams.read_new(self._read_count(clicks), block_ms=max(remaining_ms, 0))
            first_read = False
            if not got:
                break
            self._learn_entry_size(got)
            _add(batch, got)
        return list(batch.values())

    async def _fill(self, batch: dict[tuple[str, str], StreamEntry], read) -> bool:
        """Add what ``read(count)`` gives until the batch is full; True if more may remain."""
        while (clicks := _clicks_in(batch.values())) < self.settings.ingest_batch_max:
            got = await read(self._read_count(clicks))
            if not got:
                return False
            self._learn_entry_size(got)
            if not _add(batch, got):
                return False
        return True

    def _own_pending_reader(self):
        after: dict[str, str] = {}

        async def read(count: int) -> list[StreamEntry]:
            got = await self.streams.read_own_pending(count, after)
            for entry in got:
                after[entry.stream] = entry.entry_id
            return got

        return read

    def _read_count(self, clicks: int) -> int:
        """Entries to ask for so the batch lands near ``ingest_batch_max`` clicks."""
        wanted = math.ceil((self.settings.ingest_batch_max - clicks) / self._clicks_per_entry)
        return max(1, min(wanted, 10_000))

    def _learn_entry_size(self, entries: Sequence[StreamEntry]) -> None:
        # The largest entry of the last read: overshoot stays within one read's spread.
        self._clicks_per_entry = max(1, max(entry_click_count(e.fields) for e in entries))

    # -- applying --------------------------------------------------------------------

    async def _apply(self, entries: list[StreamEntry]) -> IngestCounts:
        counts = IngestCounts(entries_read=len(entries))
        decoded: list[_Decoded] = []
        rejected: list[tuple[StreamEntry, str]] = []
        for entry in entries:
            result = decode_click_entry(entry.fields)
            if isinstance(result, Rejected):
                rejected.append((entry, result.reason))
            else:
                decoded.append(_Decoded(entry, result))
        # Undecodable entries never wait on Postgres.
        await self._dead_letter(rejected, counts)
        counts.clicks_read = sum(len(d.records) for d in decoded)
        if not decoded:
            return counts
        try:
            counts.clicks_inserted = await self._insert([r for d in decoded for r in d.records])
        except Exception as exc:
            if not is_data_error(exc):
                raise
            log.warning("click batch rejected by Postgres (%s); applying entry by entry", exc)
            counts.clicks_inserted = await self._apply_each(decoded, counts)
        else:
            await self.streams.ack([d.entry for d in decoded])
        counts.clicks_duplicate = counts.clicks_read - counts.clicks_inserted
        return counts

    async def _apply_each(self, decoded: list[_Decoded], counts: IngestCounts) -> int:
        inserted = 0
        for item in decoded:
            try:
                inserted += await self._insert(item.records)
            except Exception as exc:
                if not is_data_error(exc):
                    raise
                counts.clicks_read -= len(item.records)
                await self._dead_letter([(item.entry, f"rejected by Postgres: {exc}")], counts)
                continue
            await self.streams.ack([item.entry])
        return inserted

    async def _insert(self, records: list[ClickRecord]) -> int:
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                inserted = await insert_clicks(conn, records, sub1_limit=self.settings.stats_sub1_limit)
                crossed = await count_capped_clicks(conn, inserted)
                await record_tracked_events(conn, per_org_month(inserted))
            if crossed:
                await self._publish_capped(conn, crossed)
        return sum(group.clicks for group in inserted)

    async def _publish_capped(self, conn: asyncpg.Connection, crossed: list[CrossedCap]) -> None:
        """Republish the links under the caps just reached (their configs now say until when)."""
        try:
            for cap in crossed:
                configs = await load_link_configs(
                    conn, str(cap.org_id), offer_id=str(cap.offer_id),
                    affiliate_id=str(cap.affiliate_id) if cap.affiliate_id else None,
                )
                await publish_links(self.streams.redis, self.keys, configs)
        except Exception:
            log.exception("republishing the links of %d reached click caps failed; the resync job repairs it", len(crossed))

    async def _dead_letter(self, rejected: list[tuple[StreamEntry, str]], counts: IngestCounts) -> None:
        if rejected:
            for entry, reason in rejected:
                log.warning("dead-lettering %s %s: %s", entry.stream, entry.entry_id, reason)
            await self.streams.dead_letter(rejected)
            counts.entries_dead_lettered += len(rejected)


def _add(batch: dict[tuple[str, str], StreamEntry], entries: Sequence[StreamEntry]) -> int:
    """Add the entries not in ``batch`` yet; return how many were new."""
    before = len(batch)
    for entry in entries:
        batch.setdefault((entry.stream, entry.entry_id), entry)
    return len(batch) - before


def _clicks_in(entries: Iterable[StreamEntry]) -> int:
    return sum(entry_click_count(e.fields) for e in entries)
