"""Conversion caps counted in Postgres (core.store.conversion_caps): exact under concurrency,
per UTC day and month, per affiliate, given back on release, forced past by an operator."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import msgspec
import pytest

from core.caps import Caps
from core.db import create_pool
from core.store.conversion_caps import (
    NIL, CapClaim, approved_this_month, claim_caps, count_approval, count_approvals, release_caps,
)

UTC = dt.timezone.utc
AT = dt.datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
ORG, OFFER = uuid.uuid4(), uuid.uuid4()
AFF, OTHER_AFF = uuid.uuid4(), uuid.uuid4()


def caps(**fields) -> Caps:
    return msgspec.convert(fields, Caps)


def claim_of(affiliate: uuid.UUID = AFF, at: dt.datetime = AT, payout_minor: int = 300) -> CapClaim:
    return CapClaim(org_id=ORG, offer_id=OFFER, affiliate_id=affiliate, at=at, payout_minor=payout_minor)


async def claim(pool, one: CapClaim, limits: Caps, *, force: bool = False):
    async with pool.acquire() as conn, conn.transaction():
        return await claim_caps(conn, one, limits, force=force)


async def counters(pool) -> dict[tuple[str, str, dt.date], tuple[int, int]]:
    """(offer|<affiliate>, period, start) → (conversions, payout_minor)."""
    rows = await pool.fetch("select * from conversion_counters where org_id = $1 and offer_id = $2", ORG, OFFER)
    return {("offer" if r["affiliate_id"] == NIL else str(r["affiliate_id"]), r["period"], r["period_start"]):
            (r["conversions"], r["payout_minor"]) for r in rows}


async def race(database_url, claims: list[CapClaim], limits: Caps) -> list[bool]:
    """Each claim in its own transaction on its own connection, all started before any claims."""
    many = await create_pool(database_url, min_size=len(claims), max_size=len(claims))
    started = asyncio.Barrier(len(claims))

    async def one(item: CapClaim) -> bool:
        async with many.acquire() as conn, conn.transaction():
            await conn.execute("select 1")  # the transaction is open on the server
            await started.wait()
            return (await claim_caps(conn, item, limits)).within

    try:
        return list(await asyncio.gather(*(one(c) for c in claims)))
    finally:
        await many.close()


# -- exact under concurrency ------------------------------------------------------

async def test_200_concurrent_claims_against_a_cap_of_100_count_exactly_100(pool, database_url):
    limits = caps(offer={"daily_conversions": 100})
    within = await race(database_url, [claim_of() for _ in range(200)], limits)
    assert sum(within) == 100
    assert (await counters(pool))[("offer", "day", AT.date())] == (100, 100 * 300)


async def test_200_concurrent_claims_against_a_payout_cap_stop_at_the_payout(pool, database_url):
    limits = caps(per_affiliate={"monthly_payout_minor": 100 * 250})
    within = await race(database_url, [claim_of(payout_minor=250) for _ in range(200)], limits)
    assert sum(within) == 100
    assert (await counters(pool))[(str(AFF), "month", AT.date().replace(day=1))] == (100, 100 * 250)


async def test_concurrent_claims_of_several_affiliates_keep_both_the_offer_and_each_affiliate_cap(pool, database_url):
    affiliates = [uuid.uuid4() for _ in range(4)]
    limits = caps(offer={"daily_conversions": 70}, per_affiliate={"daily_conversions": 20})
    claims = [claim_of(affiliates[n % 4]) for n in range(160)]
    within = await race(database_url, claims, limits)
    counted = await counters(pool)
    assert sum(within) == 70 == counted[("offer", "day", AT.date())][0]
    per_affiliate = [counted[(str(a), "day", AT.date())][0] for a in affiliates]
    assert all(n <= 20 for n in per_affiliate) and sum(per_affiliate) == 70
    for affiliate, n in zip(affiliates, per_affiliate):
        assert sum(w for c, w in zip(claims, within) if c.affiliate_id == affiliate) == n


async def test_transactions_claiming_several_offers_and_affiliates_in_key_order_do_not_deadlock(pool, database_url):
    offers, affiliates = sorted(uuid.uuid4() for _ in range(2)), sorted(uuid.uuid4() for _ in range(3))
    pairs = [(o, a) for o in offers for a in affiliates]
    limits = caps(offer={"daily_conversions": 50}, per_affiliate={"daily_conversions": 12})
    batches = [[pairs[(n + k) % 6] for k in range(0, 6, 1 + n % 3)] for n in range(60)]
    many = await create_pool(database_url, min_size=len(batches), max_size=len(batches))
    started = asyncio.Barrier(len(batches))

    async def one(batch) -> int:
        async with many.acquire() as conn, conn.transaction():
            await conn.execute("select 1")
            await started.wait()
            results = [await claim_caps(conn, CapClaim(ORG, o, a, AT, 100), limits) for o, a in sorted(batch)]
            return sum(r.within for r in results)

    try:
        within = await asyncio.gather(*(one(b) for b in batches))  # a deadlock would raise here
    finally:
        await many.close()
    rows = await pool.fetch("select offer_id, affiliate_id, conversions from conversion_counters")
    assert sum(within) == sum(r["conversions"] for r in rows if r["affiliate_id"] != NIL)
    assert all(r["conversions"] <= (50 if r["affiliate_id"] == NIL else 12) for r in rows)
    assert {r["conversions"] for r in rows if r["affiliate_id"] == NIL} == {36}  # 3 affiliates × 12 each


# -- what a claim counts ------------------------------------------------------------

async def test_an_offer_without_conversion_or_payout_limits_writes_nothing(pool):
    for limits in (Caps(), caps(offer={"daily_clicks": 5}, per_affiliate={"monthly_clicks": 50})):
        assert (await claim(pool, claim_of(), limits)).within
    assert await counters(pool) == {}


async def test_only_the_counters_a_limit_needs_are_kept(pool):
    await claim(pool, claim_of(), caps(offer={"monthly_conversions": 10}, per_affiliate={"daily_payout_minor": 900}))
    assert await counters(pool) == {("offer", "month", dt.date(2026, 3, 1)): (1, 300),
                                    (str(AFF), "day", AT.date()): (1, 300)}


async def test_a_daily_cap_starts_again_the_next_utc_day_and_a_monthly_one_the_next_month(pool):
    limits = caps(offer={"daily_conversions": 2, "monthly_conversions": 3})
    late = dt.datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC)
    next_day_in_berlin = dt.datetime(2026, 3, 15, 0, 30, tzinfo=dt.timezone(dt.timedelta(hours=1)))  # 14th UTC
    next_day = dt.datetime(2026, 3, 15, 0, 0, tzinfo=UTC)
    assert [(await claim(pool, claim_of(at=at), limits)).within
            for at in (AT, late, next_day_in_berlin, next_day, next_day)] == [True, True, False, True, False]
    # the 3rd of March is the monthly limit; April is a new month
    assert (await claim(pool, claim_of(at=dt.datetime(2026, 3, 31, tzinfo=UTC)), limits)).within is False
    assert (await claim(pool, claim_of(at=dt.datetime(2026, 4, 1, tzinfo=UTC)), limits)).within
    counted = await counters(pool)
    assert counted[("offer", "day", dt.date(2026, 3, 14))][0] == 2
    assert counted[("offer", "month", dt.date(2026, 3, 1))][0] == 3
    assert counted[("offer", "month", dt.date(2026, 4, 1))][0] == 1


async def test_an_affiliate_override_replaces_the_per_affiliate_limits(pool):
    limits = caps(per_affiliate={"daily_conversions": 1},
                  affiliate_overrides={str(OTHER_AFF): {"daily_conversions": 3}})
    assert [(await claim(pool, claim_of(AFF), limits)).within for _ in range(2)] == [True, False]
    assert [(await claim(pool, claim_of(OTHER_AFF), limits)).within for _ in range(4)] == [True, True, True, False]
    # an override without limits leaves that affiliate unbounded; the offer's own limit still holds
    limits = caps(offer={"daily_conversions": 2}, per_affiliate={"daily_conversions": 1},
                  affiliate_overrides={str(OTHER_AFF): {}})
    assert [(await claim(pool, claim_of(OTHER_AFF), limits)).within for _ in range(3)] == [True, True, False]
    assert (await counters(pool))[("offer", "day", AT.date())][0] == 2


async def test_a_payout_cap_takes_a_conversion_whose_payout_still_fits_and_refuses_one_that_would_pass_it(pool):
    limits = caps(offer={"daily_payout_minor": 1000})
    results = [await claim(pool, claim_of(payout_minor=p), limits) for p in (600, 500, 400, 0)]
    assert [r.within for r in results] == [True, False, True, True]
    assert [r.reached for r in results] == [[], [], ["offer.daily_payout_minor"], []]
    assert (await counters(pool))[("offer", "day", AT.date())] == (3, 1000)


async def test_reached_names_each_limit_once_when_a_claim_fills_it(pool):
    limits = caps(offer={"daily_conversions": 2, "monthly_conversions": 5},
                  per_affiliate={"daily_conversions": 1, "monthly_payout_minor": 600})
    first = await claim(pool, claim_of(), limits)
    assert first == first.__class__(within=True, reached=["affiliate.daily_conversions"])
    second = await claim(pool, claim_of(OTHER_AFF), limits)
    assert second.reached == ["offer.daily_conversions", "affiliate.daily_conversions"]
    assert (await claim(pool, claim_of(), limits)).reached == []  # refused: fills nothing


async def test_a_limit_of_zero_admits_nothing(pool):
    assert not (await claim(pool, claim_of(), caps(per_affiliate={"monthly_conversions": 0}))).within
    assert (await counters(pool))[(str(AFF), "month", dt.date(2026, 3, 1))] == (0, 0)


async def test_force_counts_past_the_limit(pool):
    limits = caps(offer={"daily_conversions": 1})
    assert (await claim(pool, claim_of(), limits)).reached == ["offer.daily_conversions"]
    forced = await claim(pool, claim_of(), limits, force=True)
    assert forced.within and forced.reached == []
    assert (await counters(pool))[("offer", "day", AT.date())] == (2, 600)


async def test_a_refused_claim_counts_nowhere_even_where_it_fitted(pool):
    limits = caps(offer={"daily_conversions": 10}, per_affiliate={"daily_conversions": 1})
    await claim(pool, claim_of(), limits)
    assert not (await claim(pool, claim_of(), limits)).within
    assert (await counters(pool))[("offer", "day", AT.date())] == (1, 300)


# -- release ------------------------------------------------------------------------

async def test_release_gives_the_place_and_the_payout_back(pool):
    limits = caps(offer={"daily_conversions": 2}, per_affiliate={"monthly_payout_minor": 1000})
    assert [(await claim(pool, claim_of(), limits)).within for _ in range(3)] == [True, True, False]
    async with pool.acquire() as conn, conn.transaction():
        await release_caps(conn, claim_of())
    assert await counters(pool) == {("offer", "day", AT.date()): (1, 300),
                                    (str(AFF), "month", dt.date(2026, 3, 1)): (1, 300)}
    assert (await claim(pool, claim_of(), limits)).within


async def test_release_touches_only_the_claims_day_and_month_and_never_goes_below_zero(pool):
    limits = caps(offer={"daily_conversions": 5, "monthly_conversions": 5})
    await claim(pool, claim_of(at=AT), limits)
    await claim(pool, claim_of(at=AT + dt.timedelta(days=1)), limits)
    async with pool.acquire() as conn, conn.transaction():
        await release_caps(conn, claim_of(at=AT + dt.timedelta(days=1)))
        await release_caps(conn, claim_of(at=AT + dt.timedelta(days=1), payout_minor=10_000))
    assert await counters(pool) == {("offer", "day", AT.date()): (1, 300),
                                    ("offer", "day", AT.date() + dt.timedelta(days=1)): (0, 0),
                                    ("offer", "month", dt.date(2026, 3, 1)): (0, 0)}


async def test_a_rolled_back_claim_counts_nothing(pool):
    limits = caps(offer={"daily_conversions": 1})
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            assert (await claim_caps(conn, claim_of(), limits)).within
            raise RuntimeError("the batch failed after the claim")
    assert (await claim(pool, claim_of(), limits)).within


# -- approvals ----------------------------------------------------------------------

async def test_approvals_count_per_affiliate_and_month_and_never_below_zero(pool):
    async with pool.acquire() as conn, conn.transaction():
        for delta in (+1, +1, -1, +1):
            await count_approval(conn, ORG, OFFER, AFF, AT, delta)
        await count_approval(conn, ORG, OFFER, OTHER_AFF, AT, -1)  # a reversal of nothing counted
        await count_approvals(conn, {(ORG, OFFER, AFF, dt.date(2026, 4, 1)): 4, (ORG, OFFER, OTHER_AFF,
                                                                                  dt.date(2026, 3, 1)): 2})
        assert await approved_this_month(conn, ORG, OFFER, AFF, AT) == 2
        assert await approved_this_month(conn, ORG, OFFER, AFF, dt.datetime(2026, 4, 30, tzinfo=UTC)) == 4
        assert await approved_this_month(conn, ORG, OFFER, OTHER_AFF, AT) == 2
        assert await approved_this_month(conn, ORG, uuid.uuid4(), AFF, AT) == 0
    assert {k: v for k, v in (await counters(pool)).items()} == {
        (str(AFF), "month", dt.date(2026, 3, 1)): (0, 0), (str(AFF), "month", dt.date(2026, 4, 1)): (0, 0),
        (str(OTHER_AFF), "month", dt.date(2026, 3, 1)): (0, 0)}  # approvals leave the cap counters alone
