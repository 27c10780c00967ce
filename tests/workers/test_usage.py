"""Monthly usage counted by the ingest worker: once per click row, split into overage at the limit."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from core.store.organizations import create_organization
from core.store.usage import record_tracked_events
from tests.workers.clicks import make_click, push, run_once_dying_before_ack, stored_click_ids

JAN_31_LATE = dt.datetime(2030, 1, 31, 23, 59, 59, 500_000, tzinfo=dt.timezone.utc)
FEB_1_EARLY = dt.datetime(2030, 2, 1, 0, 0, 0, 500_000, tzinfo=dt.timezone.utc)
JAN, FEB = dt.date(2030, 1, 1), dt.date(2030, 2, 1)


def ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


async def new_org(pool, plan: str = "starter") -> str:
    async with pool.acquire() as conn:
        org = await create_organization(conn, f"{plan} org")
        await conn.execute("update organizations set plan = $2 where id = $1", org.id, plan)
    return str(org.id)


def org_uuid(org: str) -> uuid.UUID:
    return uuid.UUID(org)


async def usage(pool, org_id: str) -> dict[dt.date, tuple[int, int]]:
    rows = await pool.fetch("select month, events, overage_events from usage_monthly where org_id = $1", org_id)
    return {r["month"]: (r["events"], r["overage_events"]) for r in rows}


def clicks(org_id: str, count: int, at: dt.datetime = JAN_31_LATE) -> list:
    return [make_click(ms(at) + n % 400, org_id=org_id) for n in range(count)]


async def test_each_inserted_click_counts_once_even_when_redelivered(make_consumer, pool, redis, keys):
    org = await new_org(pool)
    batch = clicks(org, 7)
    await push(redis, keys, batch)
    await push(redis, keys, batch)  # the same clicks again, in another entry
    consumer = make_consumer()
    await consumer.run_once()
    await push(redis, keys, batch[:3])  # and again, after they were committed
    await consumer.run_once()

    assert len(await stored_click_ids(pool)) == 7
    assert await usage(pool, org) == {JAN: (7, 0)}


async def test_a_batch_killed_before_its_ack_is_not_counted_again(make_consumer, pool, redis, keys):
    org = await new_org(pool)
    await push(redis, keys, clicks(org, 4))
    doomed = make_consumer("doomed")

    await run_once_dying_before_ack(doomed)
    assert await usage(pool, org) == {JAN: (4, 0)}  # committed with the clicks

    await make_consumer("doomed").run_once()  # restarts under its name, re-reads its pending entry

    assert await usage(pool, org) == {JAN: (4, 0)}


async def test_clicks_count_in_the_utc_month_they_happened(make_consumer, pool, redis, keys):
    org = await new_org(pool)
    await push(redis, keys, clicks(org, 3, JAN_31_LATE) + clicks(org, 2, FEB_1_EARLY))

    await make_consumer().run_once()

    assert await usage(pool, org) == {JAN: (3, 0), FEB: (2, 0)}


async def test_organizations_are_counted_apart(make_consumer, pool, redis, keys):
    a, b = await new_org(pool), await new_org(pool)
    await push(redis, keys, clicks(a, 2) + clicks(b, 5))

    await make_consumer().run_once()

    assert await usage(pool, a) == {JAN: (2, 0)}
    assert await usage(pool, b) == {JAN: (5, 0)}


async def test_clicks_of_an_unknown_organization_are_stored_but_not_counted(make_consumer, pool, redis, keys):
    stray = make_click()
    await push(redis, keys, [stray])

    counts = await make_consumer().run_once()

    assert counts.clicks_inserted == 1 and counts.entries_dead_lettered == 0
    assert await pool.fetchval("select count(*) from usage_monthly") == 0


async def test_the_limit_crossed_inside_one_batch_splits_it(make_consumer, pool, redis, keys):
    org = await new_org(pool, "starter")  # 10,000 events a month
    async with pool.acquire() as conn:
        await record_tracked_events(conn, {(org_uuid(org), JAN): 9_995})
    await push(redis, keys, clicks(org, 8))

    await make_consumer().run_once()
    assert await usage(pool, org) == {JAN: (10_003, 3)}

    await push(redis, keys, clicks(org, 4))
    await make_consumer().run_once()
    assert await usage(pool, org) == {JAN: (10_007, 7)}


@pytest.mark.parametrize("plan, before, new, expected", [
    ("starter", 0, 10_000, (10_000, 0)),
    ("starter", 0, 10_001, (10_001, 1)),
    ("starter", 9_999, 2, (10_001, 1)),
    ("starter", 12_000, 5, (12_005, 2_005)),
    ("professional", 99_990, 20, (100_010, 10)),
    ("professional", 10_000, 20, (10_020, 0)),
    ("enterprise", 5_000_000, 20, (5_000_020, 0)),
])
async def test_overage_is_what_lies_past_the_plans_limit(pool, plan, before, new, expected):
    org = org_uuid(await new_org(pool, plan))
    async with pool.acquire() as conn, conn.transaction():
        if before:
            await record_tracked_events(conn, {(org, JAN): before})
        await record_tracked_events(conn, {(org, JAN): new})

    assert await usage(pool, str(org)) == {JAN: expected}


async def test_an_upgrade_mid_month_stops_overage_without_rewriting_it(pool):
    org = org_uuid(await new_org(pool, "starter"))
    async with pool.acquire() as conn:
        await record_tracked_events(conn, {(org, JAN): 10_010})  # 10 over starter
        await conn.execute("update organizations set plan = 'professional' where id = $1", org)
        await record_tracked_events(conn, {(org, JAN): 50})  # well within professional

    assert await usage(pool, str(org)) == {JAN: (10_060, 10)}


async def test_concurrent_batches_lose_no_increment(pool):
    org = org_uuid(await new_org(pool, "starter"))

    async def add(n: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await record_tracked_events(conn, {(org, JAN): n, (org, FEB): n})

    await asyncio.gather(*(add(1_000) for _ in range(12)))

    assert await usage(pool, str(org)) == {JAN: (12_000, 2_000), FEB: (12_000, 2_000)}
