"""Retention with an injected clock: which partitions go, which rows go, what holds a
partition back (a click stream entry not yet ingested), and that a second run is a no-op."""

from __future__ import annotations

import datetime as dt

from core.store.clicks import insert_clicks
from core.store.organizations import create_organization, update_org_data_settings
from core.store.partitions import drop_daily_partition, ensure_daily_partitions
from tests.workers.clicks import entry_fields, make_click
from workers.maintenance import apply_retention, apply_retention_job
from workers.settings import worker_settings

NOW = dt.datetime(2030, 6, 15, 10, 30, tzinfo=dt.timezone.utc)
TODAY = NOW.date()
OLD_DAYS = [200, 100, 95, 40, 10]  # days ago with clicks
CLICKS_PER_ORG_AND_DAY = 3


def ago(days: int) -> dt.date:
    return TODAY - dt.timedelta(days=days)


def noon(days: int) -> int:
    """Epoch ms of noon UTC ``days`` days before today."""
    day = ago(days)
    return int(dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.timezone.utc).timestamp() * 1000)


async def click_partitions(pool) -> set[dt.date]:
    rows = await pool.fetch(
        "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid"
        " join pg_class p on p.oid = i.inhparent where p.relname = 'clicks'")
    return {dt.datetime.strptime(r["relname"][len("clicks_p"):], "%Y%m%d").date() for r in rows}


async def clicks_by_org_and_day(pool) -> dict[tuple[str, dt.date], int]:
    rows = await pool.fetch(
        "select org_id::text as org_id, (clicked_at at time zone 'utc')::date as day, count(*) as n"
        " from clicks group by 1, 2")
    return {(r["org_id"], r["day"]): r["n"] for r in rows}


async def two_orgs_with_old_clicks(pool, long_days: int = 96, short_days: int = 30) -> tuple[str, str]:
    """Org ``long`` keeps clicks ``long_days``, org ``short`` ``short_days``; each has
    clicks on every day of OLD_DAYS."""
    async with pool.acquire() as conn:
        long = await create_organization(conn, "Keeps long")
        short = await create_organization(conn, "Keeps short")
        await update_org_data_settings(conn, long.id, clicks_retention_days=long_days)
        await update_org_data_settings(conn, short.id, clicks_retention_days=short_days)
        await insert_clicks(conn, [
            make_click(noon(days) + n, org_id=str(org.id))
            for org in (long, short) for days in OLD_DAYS for n in range(CLICKS_PER_ORG_AND_DAY)
        ])
    return str(long.id), str(short.id)


async def test_old_partitions_are_dropped_and_shorter_retentions_deleted(pool, redis, keys):
    long, short = await two_orgs_with_old_clicks(pool)

    report = await apply_retention(pool, redis, keys, now=NOW, days_ahead_count=3, delete_batch_rows=2)

    # The longest retention is 96 days: the partitions wholly before 96 days ago go.
    assert report.dropped_click_days == [ago(200), ago(100)]
    assert report.held_click_days == []
    assert await click_partitions(pool) == {ago(95), ago(40), ago(10), TODAY, ago(-1), ago(-2)}
    # The 30-day organization loses its clicks older than 30 days, and only those.
    assert report.deleted_clicks == {short: 2 * CLICKS_PER_ORG_AND_DAY}
    assert report.deletes_incomplete is False
    assert await clicks_by_org_and_day(pool) == {
        (long, ago(95)): 3, (long, ago(40)): 3, (long, ago(10)): 3, (short, ago(10)): 3,
    }

    again = await apply_retention(pool, redis, keys, now=NOW, days_ahead_count=3, delete_batch_rows=2)

    assert (again.created_click_days, again.dropped_click_days, again.deleted_clicks) == ([], [], {})
    assert len(await clicks_by_org_and_day(pool)) == 4


async def test_deletes_stop_at_the_bound_and_the_next_run_continues(pool, redis, keys):
    _, short = await two_orgs_with_old_clicks(pool)

    first = await apply_retention(
        pool, redis, keys, now=NOW, days_ahead_count=1, delete_batch_rows=2, delete_max_rows=5)
    second = await apply_retention(
        pool, redis, keys, now=NOW, days_ahead_count=1, delete_batch_rows=2, delete_max_rows=5)

    assert (first.deleted_clicks, first.deletes_incomplete) == ({short: 5}, True)
    assert (second.deleted_clicks, second.deletes_incomplete) == ({short: 1}, False)
    assert (short, ago(40)) not in await clicks_by_org_and_day(pool)


async def test_a_partition_with_a_pending_stream_entry_is_kept_until_it_is_acked(pool, redis, keys):
    long, short = await two_orgs_with_old_clicks(pool, long_days=30)
    stream = keys.click_stream(0)
    # A batch from 100 days ago, delivered to an ingest consumer that has not acked it.
    entry_id = f"{noon(100)}-0"
    await redis.xadd(stream, entry_fields([make_click(noon(100), org_id=long)]), id=entry_id)
    await redis.xgroup_create(stream, "ingest", id="0")
    await redis.xreadgroup("ingest", "stuck", {stream: ">"})

    held = await apply_retention(pool, redis, keys, now=NOW, days_ahead_count=1)

    assert held.dropped_click_days == [ago(200)]
    assert held.held_click_days == [ago(100), ago(95), ago(40)]
    assert {ago(100), ago(95), ago(40)} <= await click_partitions(pool)

    await redis.xack(stream, "ingest", entry_id)
    released = await apply_retention(pool, redis, keys, now=NOW, days_ahead_count=1)

    assert released.dropped_click_days == [ago(100), ago(95), ago(40)]
    assert released.held_click_days == []
    assert {day for _, day in await clicks_by_org_and_day(pool)} == {ago(10)}


async def test_undelivered_entries_hold_partitions_too(pool, redis, keys):
    await two_orgs_with_old_clicks(pool, long_days=30)
    stream = keys.click_stream(0)
    await redis.xadd(stream, entry_fields([make_click(noon(40))]), id=f"{noon(40)}-0")

    no_group = await apply_retention(pool, redis, keys, now=NOW, days_ahead_count=1)
    await redis.xgroup_create(stream, "ingest", id="0")  # a group that has read nothing yet
    not_read = await apply_retention(pool, redis, keys, now=NOW, days_ahead_count=1)
    await redis.xgroup_setid(stream, "ingest", id="$")  # everything delivered (and nothing pending)
    read = await apply_retention(pool, redis, keys, now=NOW, days_ahead_count=1)

    assert (no_group.dropped_click_days, no_group.held_click_days) == ([ago(200), ago(100), ago(95)], [ago(40)])
    assert (not_read.dropped_click_days, not_read.held_click_days) == ([], [ago(40)])
    assert (read.dropped_click_days, read.held_click_days) == ([ago(40)], [])


async def test_the_job_reads_the_clock_from_the_context(pool, redis, keys, settings):
    long, short = await two_orgs_with_old_clicks(pool)
    ctx = {"pool": pool, "redis": redis, "keys": keys, "settings": settings, "now": lambda: NOW}

    result = await apply_retention_job(ctx)

    assert result["dropped_click_days"] == [ago(200).isoformat(), ago(100).isoformat()]
    assert result["deleted_clicks"] == {short: 6}
    assert result["created_click_days"][0] == TODAY.isoformat()


def test_the_worker_runs_retention_daily(settings):
    [job] = [c for c in worker_settings(settings)["cron_jobs"] if c.name == "cron:apply_retention_job"]
    assert (job.hour, job.minute, job.day, job.run_at_startup) == (3, 17, None, False)


async def test_a_busy_partition_is_left_for_a_later_run_rather_than_waited_for(pool):
    day = ago(200)
    async with pool.acquire() as conn:
        await ensure_daily_partitions(conn, "clicks", [day])
    async with pool.acquire() as reader, reader.transaction():
        await reader.execute(f"select count(*) from clicks_p{day:%Y%m%d}")  # a long report holds its lock
        async with pool.acquire() as conn:
            assert await drop_daily_partition(conn, "clicks", day, lock_timeout_ms=50) is False
        assert day in await click_partitions(pool)
    async with pool.acquire() as conn:
        assert await drop_daily_partition(conn, "clicks", day, lock_timeout_ms=50) is True
        assert await drop_daily_partition(conn, "clicks", day, lock_timeout_ms=50) is True  # already gone
    assert day not in await click_partitions(pool)


async def test_conversions_past_retention_go_with_their_history_and_a_second_run_finds_none(pool, redis, keys):
    async with pool.acquire() as conn:
        long = await create_organization(conn, "Keeps conversions long")
        short = await create_organization(conn, "Keeps conversions short")
        await update_org_data_settings(conn, long.id, conversions_retention_days=730)
        await update_org_data_settings(conn, short.id, conversions_retention_days=365)
        for org in (long, short):
            adv = await conn.fetchval("insert into advertisers (org_id, name) values ($1, 'Adv') returning id", org.id)
            for days in (800, 400, 366, 364, 10):
                created = dt.datetime.combine(ago(days), dt.time(12), dt.timezone.utc)
                conversion = await conn.fetchval(
                    "insert into conversions (org_id, advertiser_id, external_id, status, source, postback_id,"
                    " received_at, created_at) values ($1, $2, $3, 'pending', 'postback', 'p', $4, $4) returning id",
                    org.id, adv, f"o-{days}", created)
                await conn.execute(
                    "insert into conversion_status_history (org_id, conversion_id, to_status, actor)"
                    " values ($1, $2, 'pending', 'system')", org.id, conversion)

    first = await apply_retention(pool, redis, keys, now=NOW, days_ahead_count=1, delete_batch_rows=2)
    second = await apply_retention(pool, redis, keys, now=NOW, days_ahead_count=1, delete_batch_rows=2)

    assert first.deleted_conversions == {str(long.id): 1, str(short.id): 3}
    assert second.deleted_conversions == {}
    kept = await pool.fetch("select org_id, external_id from conversions order by 1, 2")
    assert {(r["org_id"], r["external_id"]) for r in kept} == {
        (long.id, "o-400"), (long.id, "o-366"), (long.id, "o-364"), (long.id, "o-10"),
        (short.id, "o-364"), (short.id, "o-10")}
    assert await pool.fetchval("select count(*) from conversion_status_history") == len(kept)


async def test_unique_click_visitors_of_past_days_are_forgotten(pool, redis, keys):
    from tests.workers.conversions import click_of, make_world

    world = await make_world(pool)
    async with pool.acquire() as conn:
        await insert_clicks(conn, [click_of(world, noon(days), ip=f"198.51.100.{days}") for days in (0, 1, 2, 3, 9)])
    report = await apply_retention(pool, redis, keys, now=NOW, days_ahead_count=3, delete_batch_rows=2)
    assert report.deleted_visitors == 2
    kept = await pool.fetch("select day from click_visitors order by day")
    assert [r["day"] for r in kept] == [ago(2), ago(1), ago(0)]
    # What counted stays counted: the rollups are not touched.
    assert await pool.fetchval("select sum(unique_clicks) from stats_offer_1h") == 5
