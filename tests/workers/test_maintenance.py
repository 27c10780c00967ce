"""Maintenance jobs: partitions ahead, link configs repaired; both idempotent."""

from __future__ import annotations

import datetime as dt

from core.models import link_config_decoder
from workers.maintenance import (
    create_click_partitions, create_click_partitions_job, resync_link_configs, resync_link_configs_job,
)
from tests.workers.catalog import create_link


async def partitions(pool) -> set[str]:
    rows = await pool.fetch(
        "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid"
        " join pg_class p on p.oid = i.inhparent where p.relname = 'clicks'")
    return {r["relname"] for r in rows}


async def test_partitions_for_today_and_the_days_ahead_exist_once(pool):
    today = dt.date(2031, 12, 29)

    created = await create_click_partitions(pool, today=today, days_ahead_count=7)
    again = await create_click_partitions(pool, today=today, days_ahead_count=7)

    expected = [today + dt.timedelta(days=n) for n in range(7)]
    assert created == expected
    assert again == []
    assert {f"clicks_p{d:%Y%m%d}" for d in expected} <= await partitions(pool)
    assert "clicks_p20320104" in await partitions(pool)  # across the year end
    # A row on the last day lands in its partition.
    part = await pool.fetchval(
        "insert into clicks (click_id, clicked_at, org_id, offer_id, affiliate_id, link_id, outcome)"
        " values ('x', '2032-01-04 23:59:59.999+00', gen_random_uuid(), gen_random_uuid(), gen_random_uuid(),"
        " gen_random_uuid(), 'redirect') returning tableoid::regclass::text")
    assert part == "clicks_p20320104"


async def test_the_partition_job_uses_the_settings_and_the_clock(pool, settings):
    ctx = {"pool": pool, "settings": settings, "today": lambda: dt.date(2030, 1, 1)}

    first = await create_click_partitions_job(ctx)
    second = await create_click_partitions_job(ctx)

    assert len(first) == settings.partition_days_ahead and first[0] == "2030-01-01"
    assert second == []


async def test_link_configs_are_repaired_after_redis_is_flushed(pool, redis, keys, settings):
    token = await create_link(pool)
    await resync_link_configs(pool, redis, keys)
    await redis.delete(keys.link_configs)  # Redis lost everything
    await redis.hset(keys.link_configs, "stale-token", b"junk")

    count = await resync_link_configs_job({"pool": pool, "redis": redis, "keys": keys})
    again = await resync_link_configs_job({"pool": pool, "redis": redis, "keys": keys})

    stored = await redis.hgetall(keys.link_configs)
    assert (count, again) == (1, 1)
    assert set(stored) == {token.encode()}
    assert link_config_decoder.decode(stored[token.encode()]).token == token
