"""`afftok seed`: a small network seeded into the test database, then read back the ways
a user would: the rollups of every cube and grain, the raw window against its rollups,
GET /v1/stats, and a second run with the same seed."""

from __future__ import annotations

import argparse
import datetime as dt

import httpx
import pytest
import pytest_asyncio

from afftok.seed import count, seed
from afftok.seed_run import SeedOptions
from api.app import create_app

NOW = dt.datetime(2026, 11, 20, 17, 23, 41, tzinfo=dt.timezone.utc)
CLICKS = 20_000
SUB1_LIMIT = 4  # small, so some offers' sub1 values roll up as '(other)'
TABLES = [f"stats_{cube}_{grain}" for cube in ("offer", "affiliate", "full") for grain in ("15m", "1h", "1d")]
STATUSES = ("pending", "approved", "rejected", "reversed")


def _options(**overrides) -> SeedOptions:
    return SeedOptions(**{"clicks": CLICKS, "days": 3, "seed": 11, "raw_clicks": 200_000, "sub1_limit": SUB1_LIMIT,
                          **overrides})


async def _seed(database_url: str, **overrides):
    return await seed(database_url, _options(**overrides), now=NOW, progress=lambda line: None)


@pytest_asyncio.fixture
async def seeded(database_url):
    return await _seed(database_url)


async def _sums(pool, table: str, org_id, where: str = "true") -> dict:
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            f"select coalesce(sum(clicks), 0) as clicks, coalesce(sum(unique_clicks), 0) as unique_clicks,"
            f" {', '.join(f'coalesce(sum(conversions_{s}), 0) as {s}' for s in STATUSES)},"
            f" coalesce(sum(fraud_flagged), 0) as fraud_flagged, count(*) filter (where unique_clicks > clicks) as over,"
            f" count(*) as rows from {table} where org_id = $1 and {where}", org_id)
        money = await conn.fetch(
            f"select currency, sum(revenue_minor) as revenue, sum(payout_minor) as payout from {table}"
            f" where org_id = $1 and currency is not null and {where} group by 1 order by 1", org_id)
    return {**dict(row), "money": [tuple(m) for m in money]}


async def test_every_cube_and_grain_holds_the_clicks_asked(seeded, pool):
    sums = {t: await _sums(pool, t, seeded.org_id) for t in TABLES}
    first = sums["stats_offer_1h"]
    assert first["clicks"] == CLICKS
    assert 0.6 * CLICKS < first["unique_clicks"] < CLICKS
    conversions = sum(first[s] for s in STATUSES)
    assert 0.01 * CLICKS <= conversions <= 0.04 * CLICKS and first["approved"] > first["rejected"] > 0
    assert first["fraud_flagged"] > 0 and first["money"]
    for table, table_sums in sums.items():
        assert table_sums["over"] == 0, table  # unique ≤ clicks in every row
        assert {k: v for k, v in table_sums.items() if k not in ("rows", "over")} == {
            k: v for k, v in first.items() if k not in ("rows", "over")}, table
    assert sums["stats_full_15m"]["rows"] > sums["stats_full_1h"]["rows"] > sums["stats_offer_1h"]["rows"]
    assert seeded.clicks == CLICKS and sum(seeded.conversions.values()) == conversions


async def test_money_is_per_currency_and_clicks_carry_none(seeded, pool):
    async with pool.acquire() as conn:
        wrong = await conn.fetchval(
            "select count(*) from stats_full_1h s join offers o on o.id = s.offer_id"
            " where s.org_id = $1 and s.currency is not null and s.currency <> o.currency", seeded.org_id)
        click_rows = await conn.fetch(
            "select distinct currency, goal_key from stats_affiliate_15m where org_id = $1 and clicks > 0",
            seeded.org_id)
        currencies = {r["currency"] for r in await conn.fetch(
            "select distinct currency from offers where org_id = $1", seeded.org_id)}
    assert wrong == 0
    assert [tuple(r) for r in click_rows] == [(None, "")]
    assert currencies == {"USD", "EUR", "GBP", "JPY"}


async def test_sub1_values_are_bounded_and_registered(seeded, pool):
    async with pool.acquire() as conn:
        most = await conn.fetchval(
            "select max(n) from (select count(*) as n from stats_sub1_values where org_id = $1 group by offer_id) c",
            seeded.org_id)
        unregistered = await conn.fetchval(
            "select count(*) from stats_full_15m s where s.org_id = $1 and s.sub1 is not null"
            " and s.sub1 <> '(other)' and not exists (select from stats_sub1_values v"
            " where v.org_id = s.org_id and v.offer_id = s.offer_id and v.sub1 = s.sub1)", seeded.org_id)
        other = await conn.fetchval(
            "select coalesce(sum(clicks), 0) from stats_full_1h where org_id = $1 and sub1 = '(other)'", seeded.org_id)
        without = await conn.fetchval(
            "select coalesce(sum(clicks), 0) from stats_full_1h where org_id = $1 and sub1 is null", seeded.org_id)
    assert most == SUB1_LIMIT and unregistered == 0
    assert other > 0 and without > 0


_RAW_CLICKS = """
select offer_id, count(*) as clicks,
       count(*) filter (where first_visit) as unique_clicks
from (
    select offer_id, row_number() over (
        partition by offer_id, (clicked_at at time zone 'UTC')::date,
                     host(ip), user_agent
        order by clicked_at, click_id collate "C") = 1 as first_visit
    from clicks where org_id = $1
) c group by 1
"""
_RAW_CONVERSIONS = """
select c.offer_id, c.currency, {statuses},
       sum(h.revenue)::bigint as revenue, sum(h.payout)::bigint as payout
from conversions c
join (select conversion_id, sum(revenue_delta_minor) as revenue, sum(payout_delta_minor) as payout
      from conversion_status_history group by 1) h on h.conversion_id = c.id
where c.org_id = $1 group by 1, 2
""".format(statuses=", ".join(f"count(*) filter (where status = '{s}') as {s}" for s in STATUSES))


async def test_the_raw_window_agrees_with_its_rollups(seeded, pool):
    assert seeded.raw_start is not None and seeded.raw_start.minute == 0
    assert 0.2 * CLICKS < seeded.raw_clicks < 0.5 * CLICKS  # about the last of three days
    async with pool.acquire() as conn:
        raw_clicks = {r["offer_id"]: (r["clicks"], r["unique_clicks"]) for r in
                      await conn.fetch(_RAW_CLICKS, seeded.org_id)}
        raw_conversions = {(r["offer_id"], r["currency"]): tuple(r)[2:] for r in
                           await conn.fetch(_RAW_CONVERSIONS, seeded.org_id)}
        earliest = await conn.fetchval("select min(clicked_at) from clicks where org_id = $1", seeded.org_id)
        for table in ("stats_offer_1h", "stats_full_15m"):
            rolled = await conn.fetch(
                f"select offer_id, currency, sum(clicks) as clicks, sum(unique_clicks) as unique_clicks,"
                f" {', '.join(f'sum(conversions_{s}) as {s}' for s in STATUSES)},"
                f" sum(revenue_minor) as revenue, sum(payout_minor) as payout"
                f" from {table} where org_id = $1 and bucket >= $2 group by 1, 2", seeded.org_id, seeded.raw_start)
            assert {r["offer_id"]: (r["clicks"], r["unique_clicks"]) for r in rolled
                    if r["currency"] is None} == raw_clicks, table
            assert {(r["offer_id"], r["currency"]): tuple(r)[4:] for r in rolled
                    if r["currency"] is not None} == raw_conversions, table
    assert sum(c for c, _ in raw_clicks.values()) == seeded.raw_clicks and len(raw_conversions) > 1
    assert seeded.raw_start <= earliest < seeded.raw_start + dt.timedelta(minutes=15)


async def test_the_stats_api_returns_the_same_totals(seeded, settings, pool):
    app = create_app(settings)
    params = {"from": "2026-11-17", "to": "2026-11-20", "group_by": "offer", "limit": 1000}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        response = await client.get("/v1/stats", params=params, headers={"Authorization": f"Bearer {seeded.api_key}"})
    assert response.status_code == 200, response.text
    body = response.json()
    sums = await _sums(pool, "stats_offer_15m", seeded.org_id)
    totals = body["totals"]
    assert totals["clicks"] == CLICKS and totals["unique_clicks"] == sums["unique_clicks"]
    assert {s: totals["conversions"][s] for s in STATUSES} == {s: sums[s] for s in STATUSES}
    assert [(m["currency"], m["revenue_minor"], m["payout_minor"]) for m in totals["money"]] == sums["money"]
    async with pool.acquire() as conn:
        per_offer = {str(r["offer_id"]): r["clicks"] for r in await conn.fetch(
            "select offer_id, sum(clicks) as clicks from stats_offer_1h where org_id = $1 group by 1"
            " having sum(clicks) > 0", seeded.org_id)}
    assert {row["key"]["offer_id"]: row["clicks"] for row in body["data"] if row["clicks"]} == per_offer


async def _by_offer_name(pool, org_id) -> dict:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "select o.name, s.bucket, sum(s.clicks), sum(s.unique_clicks), sum(s.conversions_approved),"
            " sum(s.conversions_pending), sum(s.revenue_minor), sum(s.payout_minor)"
            " from stats_full_15m s join offers o on o.id = s.offer_id where s.org_id = $1 group by 1, 2", org_id)
    return {(r[0], r[1]): tuple(r)[2:] for r in rows}


async def test_the_same_seed_makes_the_same_numbers(seeded, database_url, pool):
    again = await _seed(database_url)
    other = await _seed(database_url, seed=12)
    assert again.org_id != seeded.org_id
    first = await _by_offer_name(pool, seeded.org_id)
    assert await _by_offer_name(pool, again.org_id) == first
    assert await _by_offer_name(pool, other.org_id) != first
    assert again.rollup_rows == seeded.rollup_rows and again.raw_clicks == seeded.raw_clicks


async def test_seeding_an_existing_organization_adds_to_it(seeded, database_url, pool):
    more = await _seed(database_url, org_id=seeded.org_id, seed=5, clicks=5_000, raw_clicks=1_000)
    assert more.org_id == seeded.org_id and more.api_key is None
    assert (await _sums(pool, "stats_full_1h", seeded.org_id))["clicks"] == CLICKS + 5_000
    assert more.raw_clicks <= 1_000
    async with pool.acquire() as conn:
        assert await conn.fetchval("select count(*) from offers where org_id = $1", seeded.org_id) == 100


@pytest.mark.parametrize("text, expected", [("20000", 20_000), ("200k", 200_000), ("1M", 1_000_000),
                                            ("2.5m", 2_500_000), ("100M", 100_000_000)])
def test_counts_take_k_and_m(text, expected):
    assert count(text) == expected


@pytest.mark.parametrize("text", ["", "ten", "1T", "-5", "1e6"])
def test_other_counts_are_refused(text):
    with pytest.raises(argparse.ArgumentTypeError):
        count(text)
