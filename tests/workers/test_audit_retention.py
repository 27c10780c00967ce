"""Audit log retention with an injected clock: a year and a day goes, a younger row never."""

from __future__ import annotations

import datetime as dt

from core.store.organizations import create_organization
from workers.maintenance import apply_retention


async def insert_audit_rows(pool, org_id, ages_days: list[int], now: dt.datetime) -> None:
    await pool.executemany(
        "insert into audit_log (org_id, occurred_at, actor_type, actor_id, action, target_type)"
        " values ($1, $2, 'system', 'test', $3, 'test')",
        [(org_id, now - dt.timedelta(days=age), f"age {age}") for age in ages_days])


async def remaining(pool) -> list[str]:
    return [r["action"] for r in await pool.fetch("select action from audit_log order by occurred_at")]


async def test_rows_older_than_a_year_are_deleted_and_younger_ones_kept(pool, redis, keys):
    now = dt.datetime.now(dt.timezone.utc)
    async with pool.acquire() as conn:
        org = await create_organization(conn, "Audited")
    await insert_audit_rows(pool, org.id, [800, 367, 364, 200, 0], now)
    report = await apply_retention(pool, redis, keys, now=now, days_ahead_count=2, delete_batch_rows=1)
    assert report.deleted_audit_rows == 2 and not report.deletes_incomplete
    assert await remaining(pool) == ["age 364", "age 200", "age 0"]
    again = await apply_retention(pool, redis, keys, now=now, days_ahead_count=2)
    assert again.deleted_audit_rows == 0 and await remaining(pool) == ["age 364", "age 200", "age 0"]


async def test_a_clock_far_ahead_cannot_shorten_the_year(pool, redis, keys):
    now = dt.datetime.now(dt.timezone.utc)
    async with pool.acquire() as conn:
        org = await create_organization(conn, "Audited")
    await insert_audit_rows(pool, org.id, [400, 300, 10], now)
    report = await apply_retention(pool, redis, keys, now=now + dt.timedelta(days=3000), days_ahead_count=1)
    assert report.deleted_audit_rows == 1  # only the row past a year by the database's own clock
    assert await remaining(pool) == ["age 300", "age 10"]
