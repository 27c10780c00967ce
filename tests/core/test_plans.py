"""Plans as data, and the arithmetic of their limits."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest

from core.plans import (
    ENTERPRISE, PLANS, PROFESSIONAL, STARTER, PlanLimitReached, check_active_offers, months_back, overage_delta,
    plan_named, usage_month,
)
from core.store.advertisers import create_advertiser
from core.store.offers import create_offer
from core.store.organizations import create_organization

LANDING = "https://shop.example/?c={click_id}"


def test_the_catalogue():
    assert [(p.name, p.tracked_events_per_month, p.active_offers_max) for p in PLANS.values()] == [
        ("starter", 10_000, 5),
        ("professional", 100_000, None),
        ("enterprise", None, None),
    ]
    assert plan_named("professional") is PROFESSIONAL
    with pytest.raises(ValueError, match="unknown plan 'gold'"):
        plan_named("gold")


async def test_every_plan_name_is_one_the_database_accepts_and_no_other(pool):
    async with pool.acquire() as conn:
        org = await create_organization(conn, "Plans")
        for name in PLANS:
            await conn.execute("update organizations set plan = $2 where id = $1", org.id, name)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("update organizations set plan = 'gold' where id = $1", org.id)
        assert await conn.fetchval("select column_default from information_schema.columns"
                                   " where table_name = 'organizations' and column_name = 'plan'") == "'starter'::text"


@pytest.mark.parametrize("before, new, limit, expected", [
    (0, 0, 10, 0),
    (0, 10, 10, 0),  # exactly at the limit: nothing over
    (0, 11, 10, 1),
    (9, 1, 10, 0),
    (9, 2, 10, 1),  # the limit crossed inside one batch: only the part past it
    (10, 1, 10, 1),
    (15, 5, 10, 5),  # already over: all of it
    (3, 100, 10, 93),
    (10**9, 7, None, 0),  # unlimited
])
def test_overage_is_only_what_lies_past_the_limit(before, new, limit, expected):
    assert overage_delta(before, new, limit) == expected


def test_overage_of_a_month_does_not_depend_on_how_it_was_batched():
    limit, batches = 10_000, [4_000, 5_999, 2, 1, 3_000]
    seen, overage = 0, 0
    for n in batches:
        overage += overage_delta(seen, n, limit)
        seen += n
    assert overage == sum(batches) - limit == overage_delta(0, sum(batches), limit)


@pytest.mark.parametrize("at, month", [
    (dt.datetime(2030, 1, 31, 23, 59, 59, 999_999, tzinfo=dt.timezone.utc), dt.date(2030, 1, 1)),
    (dt.datetime(2030, 2, 1, tzinfo=dt.timezone.utc), dt.date(2030, 2, 1)),
    # 2030-03-01 00:30 in Berlin is still February in UTC: months are UTC months.
    (dt.datetime(2030, 3, 1, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))), dt.date(2030, 2, 1)),
    (dt.datetime(2029, 12, 31, 20, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5))), dt.date(2030, 1, 1)),
])
def test_usage_month_is_the_utc_month(at, month):
    assert usage_month(at) == month


def test_usage_month_refuses_naive_times():
    with pytest.raises(ValueError):
        usage_month(dt.datetime(2030, 1, 1))


def test_months_back_crosses_years():
    assert months_back(dt.date(2030, 2, 1), 4) == [
        dt.date(2030, 2, 1), dt.date(2030, 1, 1), dt.date(2029, 12, 1), dt.date(2029, 11, 1),
    ]
    assert len(set(months_back(dt.date(2030, 6, 1), 12))) == 12


@pytest.mark.parametrize("plan, active, refused", [
    (STARTER, 5, False),
    (STARTER, 6, True),
    (STARTER, 9, True),  # an organization already over (say, after a downgrade)
    (PROFESSIONAL, 10_000, False),
    (ENTERPRISE, 10_000, False),
])
def test_active_offers_limit(plan, active, refused):
    if not refused:
        check_active_offers(plan, active)
        return
    with pytest.raises(PlanLimitReached) as caught:
        check_active_offers(plan, active)
    message = caught.value.message
    assert caught.value.code == "plan_limit_reached"
    assert "starter" in message and "5 active offers" in message and f"has {active - 1}" in message
    assert "pause or archive" in message and "upgrade to the professional plan" in message


async def test_two_activations_racing_for_the_last_slot_serialize(pool):
    """The second waits for the first's lock on the organization, then counts its offer too."""
    async with pool.acquire() as conn:
        org = await create_organization(conn, "Racing")
        adv = await create_advertiser(conn, org.id, "Adv")
        for n in range(4):
            await create_offer(conn, org.id, adv.id, f"Offer {n}", LANDING)
    async with pool.acquire() as first, pool.acquire() as second:
        first_tx, second_tx = first.transaction(), second.transaction()
        await first_tx.start()
        await second_tx.start()
        await create_offer(first, org.id, adv.id, "Fifth", LANDING)
        racer = asyncio.create_task(create_offer(second, org.id, adv.id, "Sixth", LANDING))
        await wait_until_blocked(pool, second, racer)
        await first_tx.commit()
        with pytest.raises(PlanLimitReached):
            await racer
        await second_tx.rollback()
    assert await pool.fetchval("select count(*) from offers where org_id = $1 and status = 'active'", org.id) == 5


async def wait_until_blocked(pool, conn, task, attempts: int = 200) -> None:
    """Until ``conn``'s backend waits on a lock, or ``task`` finished without waiting."""
    pid = conn.get_server_pid()
    for _ in range(attempts):
        if task.done():
            return
        if await pool.fetchval("select wait_event_type = 'Lock' from pg_stat_activity where pid = $1", pid):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the second activation neither finished nor waited")
