"""The statistics rollups as the write path leaves them: counted from rows actually
inserted, in the same transactions (core.store.stats_rollups)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from core.store.clicks import insert_clicks
from core.store.conversion_status import change_conversion_status
from core.store.stats_rollups import MEASURES
from tests.workers.clicks import push, run_once_dying_before_ack
from tests.workers.conversions import click_of, conversions, make_world, now_ms, postback
from workers.conversion_apply import apply_postbacks

TABLES = [f"stats_{cube}_{grain}" for cube in ("offer", "affiliate", "full") for grain in ("15m", "1h", "1d")]


async def totals(pool, table: str = "stats_full_15m") -> dict[str, int]:
    row = await pool.fetchrow(f"select {', '.join(f'coalesce(sum({m}), 0)::bigint as {m}' for m in MEASURES)}"
                              f" from {table}")
    return dict(row)


async def full_rows(pool) -> list[dict]:
    rows = await pool.fetch(
        "select bucket, offer_id, affiliate_id, goal_key, rtrim(country) as country, device, sub1,"
        " rtrim(currency) as currency, " + ", ".join(MEASURES) + " from stats_full_15m order by 1, 7, 8")
    return [dict(r) for r in rows]


async def store(pool, records, **kwargs) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await insert_clicks(conn, records, **kwargs)


async def apply(pool, settings, records) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await apply_postbacks(conn, records, settings=settings, now=dt.datetime.now(dt.timezone.utc))


async def test_every_cube_and_grain_holds_the_same_totals(pool, settings):
    world = await make_world(pool)
    start = now_ms() - 3 * 3_600_000
    clicks = [click_of(world, start + i * 600_000, ip=f"198.51.100.{i % 3}") for i in range(12)]
    await store(pool, clicks)
    await apply(pool, settings, [postback(world, c.click_id, f"o-{i}", ts_ms=c.ts_ms + 60_000)
                                 for i, c in enumerate(clicks[:5])])

    first = await totals(pool, TABLES[0])
    assert first["clicks"] == 12 and first["conversions_approved"] == 5
    assert first["revenue_minor"] == 5 * 500 and first["payout_minor"] == 5 * 300
    assert 3 <= first["unique_clicks"] <= 12
    for table in TABLES[1:]:
        assert await totals(pool, table) == first, table


async def test_a_replayed_ingest_batch_leaves_the_rollups_unchanged(make_consumer, pool, redis, keys):
    world = await make_world(pool)
    batch = [click_of(world, ip=f"203.0.113.{i}") for i in range(6)]
    await push(redis, keys, batch[:4])
    await push(redis, keys, batch[2:])  # two clicks sent twice
    doomed = make_consumer("doomed")

    await run_once_dying_before_ack(doomed)  # committed, not acked
    before = await full_rows(pool)
    assert sum(r["clicks"] for r in before) == 6 and sum(r["unique_clicks"] for r in before) == 6

    survivor = make_consumer("survivor", ingest_reclaim_idle_ms=1)
    await asyncio.sleep(0.005)
    counts = await survivor.run_once()
    assert counts.clicks_inserted == 0 and counts.clicks_duplicate == 8
    assert await full_rows(pool) == before


async def test_unique_clicks_are_a_visitors_first_on_an_offer_in_a_utc_day(pool):
    world = await make_world(pool)
    day = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    at = lambda hours: int((day - dt.timedelta(days=1) + dt.timedelta(hours=hours)).timestamp() * 1000)  # noqa: E731
    clicks = [
        click_of(world, at(1), ip="198.51.100.1", user_agent="A"),
        click_of(world, at(2), ip="198.51.100.1", user_agent="A"),  # the same visitor again
        click_of(world, at(2), ip="198.51.100.1", user_agent="B"),  # another browser
        click_of(world, at(3), ip=None, user_agent=None),
        click_of(world, at(4), ip=None, user_agent=None),
        click_of(world, at(25), ip="198.51.100.1", user_agent="A"),  # the next UTC day
    ]
    await store(pool, clicks[:3])
    await store(pool, clicks[3:])
    assert (await totals(pool))["unique_clicks"] == 4

    # Two batches racing with the same new visitor: one of them counts it.
    racing = [click_of(world, at(5), ip="192.0.2.50", user_agent="R") for _ in range(2)]
    await asyncio.gather(store(pool, racing[:1]), store(pool, racing[1:]))
    assert (await totals(pool))["unique_clicks"] == 5


async def test_sub1_keeps_the_first_values_of_an_offer_and_rolls_up_the_rest(pool, settings):
    world = await make_world(pool)
    start = now_ms() - 600_000
    clicks = [click_of(world, start + i, sub1=s) for i, s in enumerate(["a", "b", "a", "c", None, "x" * 300, ""])]
    await store(pool, clicks[:3], sub1_limit=2)
    await store(pool, clicks[3:], sub1_limit=2)
    await apply(pool, settings, [postback(world, clicks[0].click_id, "o-a", ts_ms=start + 60_000),
                                 postback(world, clicks[3].click_id, "o-c", ts_ms=start + 60_000)])

    by_sub1: dict = {}
    for row in await full_rows(pool):
        entry = by_sub1.setdefault(row["sub1"], [0, 0])
        entry[0] += row["clicks"]
        entry[1] += row["conversions_approved"]
    assert by_sub1 == {"a": [2, 1], "b": [1, 0], "(other)": [2, 1], None: [2, 0]}
    values = await pool.fetch("select sub1 from stats_sub1_values where offer_id = $1 order by sub1",
                              uuid.UUID(world.offer_id))
    assert [v["sub1"] for v in values] == ["a", "b"]


async def test_sub1_values_admitted_by_two_batches_at_once_agree(pool):
    world = await make_world(pool)
    clicks = [click_of(world, sub1="same") for _ in range(2)]
    await asyncio.gather(store(pool, clicks[:1]), store(pool, clicks[1:]))
    assert {(r["sub1"], r["clicks"]) for r in await full_rows(pool)} == {("same", 2)}


async def test_conversions_land_under_their_clicks_dimensions_and_move_with_their_status(pool, settings):
    world = await make_world(pool)
    click = click_of(world, now_ms() - 120_000, country="FR", device_type="mobile", sub1="spring")
    await store(pool, [click])
    await apply(pool, settings, [postback(world, click.click_id, "o-1", status="pending")])
    await apply(pool, settings, [postback(world, click.click_id, "o-1", status="approved")])
    (conversion,) = await conversions(pool)
    rows = [r for r in await full_rows(pool) if r["currency"] == "USD"]
    assert [(r["country"], r["device"], r["sub1"], r["conversions_pending"], r["conversions_approved"],
             r["revenue_minor"], r["payout_minor"]) for r in rows] == [("FR", "mobile", "spring", 0, 1, 500, 300)]

    # An operator reverses it (the api's path): the counts move, the money nets to zero.
    async with pool.acquire() as conn, conn.transaction():
        await change_conversion_status(conn, org_id=conversion["org_id"], conversion_id=conversion["id"],
                                       to_status="reversed", reason="chargeback", actor="user:1", correlation_id=None)
    usd = await pool.fetchrow("select sum(conversions_pending) p, sum(conversions_approved) a,"
                              " sum(conversions_reversed) r, sum(revenue_minor) rev, sum(payout_minor) pay"
                              " from stats_offer_1h where currency = 'USD'")
    assert tuple(usd) == (0, 0, 1, 0, 0)


async def test_fraud_flagged_counts_a_conversion_once(pool, settings):
    world = await make_world(pool)  # too_fast flags by default
    click = click_of(world, now_ms() - 1_000)
    await store(pool, [click])
    await apply(pool, settings, [postback(world, click.click_id, "o-1", status="pending", ts_ms=click.ts_ms + 500)])
    await apply(pool, settings, [postback(world, click.click_id, "o-1", status="approved", ts_ms=click.ts_ms + 900)])
    (conversion,) = await conversions(pool)
    assert conversion["fraud_flags"] == ["too_fast"]
    assert (await totals(pool))["fraud_flagged"] == 1
