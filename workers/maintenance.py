"""Maintenance jobs. Each one is idempotent: running it twice changes nothing the second time.

- ``create_click_partitions``: the daily ``clicks`` partitions for today and the next
  ``days_ahead - 1`` days exist afterwards. Creating is the only effect; a partition
  that exists is left alone. (The ingest consumer also creates a missing day on demand,
  so a stopped scheduler delays nothing; this keeps DDL off the ingest path.)
- ``resync_link_configs``: the Redis hash of link configs equals Postgres afterwards,
  and every edge is told to reload. Repairs a flushed or restarted Redis.
- ``resync_postback_auth``: the same for the postback credentials hash the edge
  authenticates postbacks from (``core.store.postback_credentials``); it also drops
  what expired since it was published (signing secrets past their grace, keys past
  their expiry or rotation grace).
- ``apply_retention`` (daily): the partitions ahead exist, the clicks partitions past
  the longest retention of any organization are dropped, and the older clicks of
  organizations that keep them for less are deleted (see ``core.retention`` for the
  rules and ``apply_retention`` for what it guarantees). It also deletes audit log
  rows older than ``core.audit.AUDIT_RETENTION_DAYS`` (365, the floor; the table's
  trigger keeps younger rows whatever this job is told).

The ``*_job`` functions are the arq entry points; they take what they need from the
worker context built in ``workers.settings``.
"""

from __future__ import annotations

import datetime as dt
import logging

import asyncpg
import msgspec
import redis.asyncio as aioredis

from core.audit import audit_cutoff
from core.redis_keys import RedisKeys
from core.retention import OrgCutoff, RetentionPlan, plan_retention
from core.store.audit import delete_expired_audit_rows
from core.store.link_configs import sync_all_links
from core.store.partitions import days_ahead, drop_daily_partition, ensure_daily_partitions, existing_days
from core.store.postback_credentials import sync_all_postback_auth
from core.store.retention import delete_expired_clicks, delete_expired_conversions, list_org_retentions
from core.store.stats_rollups import delete_past_visitors, visitors_cutoff
from workers.click_backlog import oldest_unprocessed_entry_ms

log = logging.getLogger(__name__)

DELETE_BATCH_ROWS = 10_000
DELETE_MAX_ROWS_PER_RUN = 1_000_000
DROP_LOCK_TIMEOUT_MS = 5_000


class RetentionReport(msgspec.Struct, frozen=True, kw_only=True):
    created_click_days: list[dt.date]
    dropped_click_days: list[dt.date]
    # Past retention but kept: a stream may still hold clicks for them, or the drop
    # could not get its lock in time. Dropped by a later run.
    held_click_days: list[dt.date]
    deleted_clicks: dict[str, int]  # org id -> rows deleted by this run
    # True when the per-run bound stopped the deletes; the next run continues.
    deletes_incomplete: bool
    deleted_audit_rows: int = 0  # past the audit log's 365 days, every organization
    deleted_conversions: dict[str, int] = {}  # org id -> conversions (with their history) deleted
    deleted_visitors: int = 0  # unique-click visitors of past days (core.store.stats_rollups)


async def create_click_partitions(pool: asyncpg.Pool, *, today: dt.date, days_ahead_count: int) -> list[dt.date]:
    """Ensure the partitions for ``today`` and the following days; return the days created now."""
    async with pool.acquire() as conn:
        created = await ensure_daily_partitions(conn, "clicks", days_ahead(today, days_ahead_count))
    if created:
        log.info("created clicks partitions for %s", ", ".join(map(str, created)))
    return created


async def resync_link_configs(pool: asyncpg.Pool, redis: aioredis.Redis, keys: RedisKeys) -> int:
    """Rewrite the link config hash from Postgres; return the number of links published."""
    async with pool.acquire() as conn:
        return await sync_all_links(conn, redis, keys)


async def resync_postback_auth(pool: asyncpg.Pool, redis: aioredis.Redis, keys: RedisKeys) -> int:
    """Rewrite the postback credentials hash from Postgres; return the number of entries published."""
    async with pool.acquire() as conn:
        return await sync_all_postback_auth(conn, redis, keys)


async def apply_retention(
    pool: asyncpg.Pool, redis: aioredis.Redis, keys: RedisKeys, *, now: dt.datetime, days_ahead_count: int,
    delete_batch_rows: int = DELETE_BATCH_ROWS, delete_max_rows: int = DELETE_MAX_ROWS_PER_RUN,
) -> RetentionReport:
    """Create the partitions ahead, then apply clicks retention as of ``now``.

    Idempotent: a second run on the same UTC day finds nothing left to drop or delete
    (unless the first one stopped at ``delete_max_rows``, which the second continues).
    Never drops today's or a later partition, one inside the 30-day floor, or one a
    click stream entry not yet ingested may still land in (``core.retention``). Clicks
    still in an edge's local spool are not visible here; they are at most as old as
    the Redis outage that put them there.

    Conversions past their organization's retention (``RetentionPlan.conversion_cutoffs``)
    are deleted with their status history, under the same per-run bound.
    """
    today = now.astimezone(dt.timezone.utc).date()
    created = await create_click_partitions(pool, today=today, days_ahead_count=days_ahead_count)
    async with pool.acquire() as conn:
        orgs = await list_org_retentions(conn)
        click_days = await existing_days(conn, "clicks")
    oldest_ms = await oldest_unprocessed_entry_ms(redis, keys)
    oldest = dt.datetime.fromtimestamp(oldest_ms / 1000, dt.timezone.utc) if oldest_ms is not None else None
    plan = plan_retention(today, click_days, orgs, oldest)
    dropped, not_locked = await _drop_click_partitions(pool, plan)
    deleted, incomplete = await _delete_past_cutoffs(
        pool, plan.click_cutoffs, delete_expired_clicks, delete_batch_rows, delete_max_rows)
    conversions_deleted, conversions_incomplete = await _delete_past_cutoffs(
        pool, plan.conversion_cutoffs, delete_expired_conversions, delete_batch_rows, delete_max_rows)
    audit_deleted, audit_incomplete = await _delete_in_batches(
        pool, delete_expired_audit_rows, audit_cutoff(today), delete_batch_rows, delete_max_rows)
    visitors_deleted, visitors_incomplete = await _delete_in_batches(
        pool, delete_past_visitors, visitors_cutoff(today), delete_batch_rows, delete_max_rows)
    report = RetentionReport(
        created_click_days=created, dropped_click_days=dropped,
        held_click_days=sorted(plan.held_click_days + not_locked), deleted_clicks=deleted,
        deletes_incomplete=incomplete or audit_incomplete or conversions_incomplete or visitors_incomplete,
        deleted_audit_rows=audit_deleted, deleted_conversions=conversions_deleted,
        deleted_visitors=visitors_deleted,
    )
    log.info(
        "retention: dropped clicks partitions %s; held %s; deleted clicks %s; deleted conversions %s;"
        " deleted audit rows %d%s",
        [d.isoformat() for d in report.dropped_click_days] or "none",
        [d.isoformat() for d in report.held_click_days] or "none", deleted or "none",
        conversions_deleted or "none", audit_deleted,
        " (bound reached, continuing next run)" if report.deletes_incomplete else "",
    )
    return report


async def _drop_click_partitions(pool: asyncpg.Pool, plan: RetentionPlan) -> tuple[list[dt.date], list[dt.date]]:
    dropped: list[dt.date] = []
    not_locked: list[dt.date] = []
    async with pool.acquire() as conn:
        for day in plan.drop_click_days:
            if await drop_daily_partition(conn, "clicks", day, lock_timeout_ms=DROP_LOCK_TIMEOUT_MS):
                dropped.append(day)
            else:
                log.warning("clicks partition for %s is busy; it will be dropped by a later run", day)
                not_locked.append(day)
    return dropped, not_locked


async def _delete_past_cutoffs(
    pool: asyncpg.Pool, cutoffs: list[OrgCutoff], delete, batch_rows: int, max_rows: int
) -> tuple[dict[str, int], bool]:
    """Run ``delete(conn, org_id, before, limit_rows=)`` in batches per organization until
    nothing is left or ``max_rows`` are deleted; return the counts and whether it stopped."""
    deleted: dict[str, int] = {}
    total = 0
    async with pool.acquire() as conn:
        for cut in cutoffs:
            while True:
                if total >= max_rows:
                    return deleted, True
                limit = min(batch_rows, max_rows - total)
                count = await delete(conn, cut.org_id, cut.before, limit_rows=limit)
                total += count
                if count:
                    deleted[cut.org_id] = deleted.get(cut.org_id, 0) + count
                if count < limit:
                    break
    return deleted, False


async def _delete_in_batches(pool: asyncpg.Pool, delete, before, batch_rows: int, max_rows: int) -> tuple[int, bool]:
    """``delete(conn, before, limit_rows=…)`` until it finds no more or ``max_rows`` went."""
    total = 0
    async with pool.acquire() as conn:
        while total < max_rows:
            limit = min(batch_rows, max_rows - total)
            count = await delete(conn, before, limit_rows=limit)
            total += count
            if count < limit:
                return total, False
    return total, True


def utc_today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


async def create_click_partitions_job(ctx: dict) -> list[str]:
    created = await create_click_partitions(
        ctx["pool"], today=ctx.get("today", utc_today)(), days_ahead_count=ctx["settings"].partition_days_ahead
    )
    return [d.isoformat() for d in created]


async def resync_link_configs_job(ctx: dict) -> int:
    return await resync_link_configs(ctx["pool"], ctx["redis"], ctx["keys"])


async def resync_postback_auth_job(ctx: dict) -> int:
    return await resync_postback_auth(ctx["pool"], ctx["redis"], ctx["keys"])


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def apply_retention_job(ctx: dict) -> dict:
    report = await apply_retention(
        ctx["pool"], ctx["redis"], ctx["keys"], now=ctx.get("now", utc_now)(),
        days_ahead_count=ctx["settings"].partition_days_ahead,
    )
    return msgspec.to_builtins(report)
