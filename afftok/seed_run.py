"""One seeding run: the network, its traffic and its rows, written in one transaction.

The traffic is generated in a thread, hour by hour, into batches of rollup rows that
the event loop COPYs while the thread makes the next ones (Python on one core, Postgres
on the other). Hours before the raw window become rollup rows only; the raw window's
clicks and conversions become rows of ``clicks``, ``conversions``, their history and
``click_visitors``, and its rollup rows are summed from those very rows.

Everything (catalog, rollups, raw rows, usage) commits together or not at all. Nothing
is disabled on the way: no index is dropped, no trigger or constraint skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import queue
import random
import threading
import time
import uuid
from typing import Callable

import asyncpg
import msgspec

from afftok.seed_network import Network, build_network
from afftok.seed_raw import CLICK_COLUMNS, CONVERSION_COLUMNS, HISTORY_COLUMNS, RawWindow
from afftok.seed_rollups import DIMENSIONS, TABLES, Rollups, columns
from afftok.seed_store import (
    copy, create_seed_organization, organization_exists, rebuild_daily_rollups, write_catalog, write_click_visitors,
    write_sub1_values,
)
from afftok.seed_traffic import Conversions, bucket_counts, bulk_bucket, link_days
from afftok.seed_window import raw_window_start
from core.store.partitions import ensure_daily_partitions
from core.store.stats_rollups import visitors_cutoff
from core.store.usage import record_tracked_events

ORG_NAME = "Seeded network"
BATCH_ROWS = 100_000  # rollup rows per COPY round
PROGRESS_EVERY_S = 3.0


class SeedOptions(msgspec.Struct, frozen=True, kw_only=True):
    clicks: int
    days: int = 90
    seed: int = 0
    org_id: uuid.UUID | None = None  # None: a new organization
    raw_clicks: int = 200_000  # at most this many raw clicks (the window shrinks by whole hours)
    raw_days: int = 1
    sub1_limit: int = 1000


class SeedSummary(msgspec.Struct, kw_only=True):
    org_id: uuid.UUID
    api_key: str | None  # the new organization's owner key (shown once)
    seed: int
    advertisers: int
    offers: int
    offer_currencies: dict[str, int]
    affiliates: int
    links: int
    sub1_values: int
    start: dt.datetime
    end: dt.datetime
    clicks: int
    conversions: dict[str, int]  # by status
    raw_start: dt.datetime | None
    raw_clicks: int
    raw_conversions: int
    rollup_rows: dict[str, int]
    elapsed_s: float


async def run_seed(conn: asyncpg.Connection, options: SeedOptions, now: dt.datetime,
                   progress: Callable[[str], None]) -> SeedSummary:
    began = time.monotonic()
    rng = random.Random(options.seed)
    network = build_network(rng, options.clicks, options.sub1_limit)
    start = now - dt.timedelta(days=options.days)
    counts = bucket_counts(rng, options.clicks, start, now)
    window = raw_window_start(counts, now, options.raw_days, options.raw_clicks)
    links = link_days(rng, network, options.days + 1)
    if window is not None:  # partitions first, committed: never hold the clicks table's lock for the whole seed
        await ensure_daily_partitions(conn, "clicks", {(window + dt.timedelta(hours=h)).date()
                                                       for h in range(int((now - window).total_seconds() // 3600) + 1)})
    async with conn.transaction():
        org_id, key = await _organization(conn, options.org_id)
        await write_catalog(conn, org_id, network, start - dt.timedelta(days=1))
        sub1_values = await write_sub1_values(conn, org_id, network)
        progress(f"catalog: {len(network.offers)} offers, {len(network.affiliates)} affiliates, "
                 f"{len(network.links)} links, {sub1_values} sub1 values")
        generator = _Generator(rng, network, org_id, counts, window, links, now)
        rows, raw = await _write_traffic(conn, generator, options.clicks, progress)
        await _write_raw(conn, org_id, raw, now)
        rows.update(await rebuild_daily_rollups(conn, org_id, DIMENSIONS))
        await record_tracked_events(conn, _per_month(org_id, counts))
    return SeedSummary(
        org_id=org_id, api_key=key, seed=options.seed, advertisers=len(network.advertisers),
        offers=len(network.offers), offer_currencies=_currencies(network), affiliates=len(network.affiliates),
        links=len(network.links), sub1_values=sub1_values, start=start, end=now, clicks=options.clicks,
        conversions=generator.conversions_by_status, raw_start=window, raw_clicks=len(raw.clicks),
        raw_conversions=len(raw.conversions), rollup_rows=rows, elapsed_s=time.monotonic() - began,
    )


async def _organization(conn: asyncpg.Connection, org_id: uuid.UUID | None) -> tuple[uuid.UUID, str | None]:
    if org_id is None:
        return await create_seed_organization(conn, ORG_NAME)
    if not await organization_exists(conn, org_id):
        raise LookupError(f"no organization {org_id}")
    return org_id, None


class _Generator:
    """The traffic, made in a thread and handed over in batches through ``batches``."""

    def __init__(self, rng, network: Network, org_id, counts, window, links, now):
        self.rng, self.network, self.counts, self.window, self.links = rng, network, counts, window, links
        self.first = next(iter(counts))
        self.conversions = Conversions(rng, network, now)
        self.rollups = Rollups(network, org_id)
        self.raw = RawWindow(rng, network, self.conversions, org_id, now, self.rollups)
        self.batches: queue.Queue = queue.Queue(maxsize=4)
        self.stop = threading.Event()
        self.conversions_by_status = {"pending": 0, "approved": 0, "rejected": 0, "reversed": 0}

    def run(self) -> None:
        try:
            done, pending = 0, {t: [] for t in TABLES}
            for bucket, count in self.counts.items():
                day_links = self.links[(bucket - self.first).days]
                if self.window is not None and bucket >= self.window:
                    self.raw.bucket(bucket, count, day_links)
                else:
                    bulk_bucket(self.rng, self.network, day_links, self.conversions, bucket, count, self.rollups)
                done += count
                if bucket.minute == 45 and (self.window is None or bucket < self.window):
                    self._take(pending)
                    if sum(map(len, pending.values())) >= BATCH_ROWS:
                        self._put((pending, done))
                        pending = {t: [] for t in TABLES}
            self._take(pending)
            self._put((pending, done))
            self._put(None)
        except BaseException as exc:  # handed to the writer, which raises it
            self._put(exc)

    def _take(self, pending: dict[str, list]) -> None:
        for table, records in self.rollups.take().items():
            pending[table].extend(records)
            if table == "stats_offer_1h":
                for r in records:
                    for status, measure in zip(self.conversions_by_status, r[7:11]):
                        self.conversions_by_status[status] += measure

    def _put(self, item) -> None:
        while not self.stop.is_set():
            try:
                self.batches.put(item, timeout=0.5)
                return
            except queue.Full:
                continue


async def _write_traffic(conn, generator: _Generator, clicks: int, progress) -> tuple[dict[str, int], object]:
    thread = threading.Thread(target=generator.run, name="seed-traffic", daemon=True)
    thread.start()
    loop, rows = asyncio.get_running_loop(), {t: 0 for t in TABLES}
    began = last = time.monotonic()
    try:
        while (item := await loop.run_in_executor(None, generator.batches.get)) is not None:
            if isinstance(item, BaseException):
                raise item
            batch, done = item
            for table in TABLES:
                rows[table] += await copy(conn, table, columns(table), batch[table])
            if time.monotonic() - last >= PROGRESS_EVERY_S or done == clicks:
                last, elapsed = time.monotonic(), time.monotonic() - began
                progress(f"{done:,} of {clicks:,} clicks ({done / max(clicks, 1):.0%}), {sum(rows.values()):,} rollup"
                         f" rows, {done / elapsed:,.0f} clicks/s, {sum(rows.values()) / elapsed:,.0f} rows/s")
    finally:
        generator.stop.set()
        await loop.run_in_executor(None, thread.join)
    return rows, generator.raw.rows


async def _write_raw(conn: asyncpg.Connection, org_id: uuid.UUID, raw, now: dt.datetime) -> None:
    await copy(conn, "clicks", CLICK_COLUMNS, raw.clicks)
    await copy(conn, "conversions", CONVERSION_COLUMNS, raw.conversions)
    await copy(conn, "conversion_status_history", HISTORY_COLUMNS, raw.history)
    await write_click_visitors(conn, org_id, visitors_cutoff(now.date()))  # what the live path still remembers


def _per_month(org_id: uuid.UUID, counts: dict[dt.datetime, int]) -> dict[tuple[uuid.UUID, dt.date], int]:
    months: dict[tuple[uuid.UUID, dt.date], int] = {}
    for bucket, n in counts.items():
        key = (org_id, bucket.date().replace(day=1))
        months[key] = months.get(key, 0) + n
    return months


def _currencies(network: Network) -> dict[str, int]:
    out: dict[str, int] = {}
    for offer in network.offers:
        out[offer.currency] = out.get(offer.currency, 0) + 1
    return dict(sorted(out.items()))
