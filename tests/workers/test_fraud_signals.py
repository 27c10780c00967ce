"""Fraud signals gathered from real click and conversion rows (core.store.fraud_signals),
judged by core.fraud_rules.evaluate: one case per rule, and flag against reject."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import msgspec
import pytest

from core.errors import ValidationError
from core.fraud_rules import FraudPolicy, evaluate
from core.store.clicks import insert_clicks
from core.store.fraud_signals import SignalInput, gather_signals, load_datacenter_ranges
from tests.workers.clicks import make_click
from tests.workers.conversions import World, make_world

UTC = dt.timezone.utc
CLICKED = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(hours=1)
IP = "203.0.113.7"
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


def policy(**fields) -> FraudPolicy:
    return msgspec.convert(fields, FraudPolicy)


async def store_clicks(pool, world: World, *ats: dt.datetime, ip: str = IP, offer_id: str | None = None,
                       org_id: str | None = None) -> None:
    async with pool.acquire() as conn:
        await insert_clicks(conn, [
            make_click(ms(at), org_id=org_id or world.org_id, offer_id=offer_id or world.offer_id,
                       affiliate_id=world.affiliate_id, link_id=world.link_id, ip=ip)
            for at in ats])


async def store_conversion(pool, world: World, ip: str | None, offer_id: str | None = None) -> None:
    await pool.execute(
        "insert into conversions (org_id, advertiser_id, offer_id, external_id, status, source, postback_id,"
        " received_at, ip) values ($1, $2, $3, $4, 'approved', 'postback', $4, now(), $5::inet)",
        uuid.UUID(world.org_id), uuid.UUID(world.advertiser_id), uuid.UUID(offer_id or world.offer_id),
        uuid.uuid4().hex, ip)


def item(world: World, **fields) -> SignalInput:
    values = dict(
        org_id=uuid.UUID(world.org_id), offer_id=uuid.UUID(world.offer_id), click_id="c1", clicked_at=CLICKED,
        click_ip=IP, click_user_agent=BROWSER, click_country="DE",
        converted_at=CLICKED + dt.timedelta(minutes=5),
    )
    values.update(fields)
    return SignalInput(**values)


async def judge(pool, items: list[SignalInput], rules: FraudPolicy, ranges=None):
    async with pool.acquire() as conn:
        signals = await gather_signals(conn, items)
    return [evaluate(s, rules, ranges) for s in signals]


@pytest.fixture
async def world(pool) -> World:
    return await make_world(pool)


# -- one case per rule --------------------------------------------------------------

async def test_a_bot_user_agent_is_the_clicks_for_a_server_postback_and_the_browsers_for_a_pixel(pool, world):
    bot = "python-requests/2.31"
    outcomes = await judge(pool, [
        item(world, click_user_agent=bot),
        item(world, conversion_user_agent=bot),  # a server postback's user agent is not the visitor's
        item(world, source="pixel", conversion_ip=IP, conversion_user_agent=bot),
        item(world, source="pixel", conversion_ip=IP, conversion_user_agent=BROWSER, click_user_agent=bot),
        item(world),
    ], policy())
    assert [o.reason for o in outcomes] == ["bot_user_agent", None, "bot_user_agent", None, None]


async def test_a_conversion_too_soon_after_its_click(pool, world):
    outcomes = await judge(pool, [
        item(world, converted_at=CLICKED + dt.timedelta(seconds=3)),
        item(world, converted_at=CLICKED + dt.timedelta(seconds=10)),  # the default minimum passes
        item(world, converted_at=CLICKED - dt.timedelta(seconds=1)),  # before its click
    ], policy())
    assert [o.reason for o in outcomes] == ["too_fast", None, "too_fast"]
    [per_offer] = await judge(pool, [item(world, converted_at=CLICKED + dt.timedelta(seconds=30))],
                              policy(min_seconds_to_convert=60))
    assert per_offer.reason == "too_fast"


async def test_click_flooding_counts_the_clicks_ip_on_the_offer_in_the_minute_up_to_the_click(pool, world):
    other = await make_world(pool)
    minute = [CLICKED - dt.timedelta(seconds=s) for s in (0, 10, 20, 30, 40, 59)]
    await store_clicks(pool, world, *minute)
    # none of these count: before the minute, after the click, another address, offer or organization
    await store_clicks(pool, world, CLICKED - dt.timedelta(seconds=60), CLICKED + dt.timedelta(seconds=1))
    await store_clicks(pool, world, *minute, ip="198.51.100.1")
    await store_clicks(pool, world, *minute, offer_id=other.offer_id)
    await store_clicks(pool, world, *minute, org_id=other.org_id)
    async with pool.acquire() as conn:
        [signals] = await gather_signals(conn, [item(world)])
    assert signals.clicks_from_ip_last_minute == 6
    at_most_6, at_most_5 = policy(click_flood_max_per_minute=6), policy(click_flood_max_per_minute=5)
    assert [o.reason for o in await judge(pool, [item(world)], at_most_6)] == [None]
    assert [o.reason for o in await judge(pool, [item(world)], at_most_5)] == ["click_flood"]


async def test_click_flooding_counts_across_midnight_partitions(pool, world):
    midnight = CLICKED.replace(hour=0, minute=0, second=0)
    clicked = midnight + dt.timedelta(seconds=20)
    await store_clicks(pool, world, midnight - dt.timedelta(seconds=30), midnight - dt.timedelta(seconds=10), clicked)
    async with pool.acquire() as conn:
        [signals] = await gather_signals(conn, [item(world, clicked_at=clicked)])
    assert signals.clicks_from_ip_last_minute == 3


async def test_repeated_conversions_count_earlier_rows_and_earlier_items_of_the_batch(pool, world):
    other = await make_world(pool)
    await store_conversion(pool, world, IP)
    await store_conversion(pool, world, "198.51.100.1")
    await store_conversion(pool, other, IP, offer_id=other.offer_id)  # another organization
    rules = policy(repeat_ip_max_earlier=1, repeat_ip="reject")
    batch = [item(world), item(world), item(world, click_ip="198.51.100.2"),
             item(world, source="pixel", conversion_ip=IP, click_ip="198.51.100.3")]
    async with pool.acquire() as conn:
        signals = await gather_signals(conn, batch)
    assert [s.earlier_conversions_from_ip for s in signals] == [1, 2, 0, 3]
    assert [s.ip for s in signals] == [IP, IP, "198.51.100.2", IP]
    assert [evaluate(s, rules).action for s in signals] == ["accept", "reject", "accept", "reject"]


async def test_a_datacenter_address_from_the_operators_cidr_file(pool, world, tmp_path):
    path = tmp_path / "datacenters.txt"
    path.write_text("# hosting ranges\n198.51.100.0/24\n2001:db8::/32  # v6\n\n")
    ranges = load_datacenter_ranges(str(path))
    outcomes = await judge(pool, [
        item(world, click_ip="198.51.100.20"),
        item(world, click_ip="2001:db8::1"),
        item(world),
        item(world, source="pixel", conversion_ip="198.51.100.20"),
    ], policy(datacenter_ip="reject"), ranges)
    assert [o.reason for o in outcomes] == ["datacenter_ip", "datacenter_ip", None, "datacenter_ip"]
    assert (await judge(pool, [item(world, click_ip="198.51.100.20")], policy(), None))[0].reason is None


def test_the_cidr_file_unset_is_no_ranges_and_a_missing_or_bad_one_is_an_error(tmp_path):
    assert load_datacenter_ranges("") is None and load_datacenter_ranges(None) is None
    with pytest.raises(OSError):
        load_datacenter_ranges(str(tmp_path / "missing.txt"))
    (tmp_path / "bad.txt").write_text("10.0.0.0/8\nnot-a-range\n")
    with pytest.raises(ValidationError, match="line 2"):
        load_datacenter_ranges(str(tmp_path / "bad.txt"))


async def test_a_country_mismatch_between_click_and_conversion(pool, world):
    outcomes = await judge(pool, [
        item(world, conversion_country="FR"),
        item(world, conversion_country="de"),
        item(world, conversion_country=None),
        item(world, click_country=None, conversion_country="FR"),
    ], policy())
    assert [o.reason for o in outcomes] == ["country_mismatch", None, None, None]


# -- policy --------------------------------------------------------------------------

async def test_each_rule_flags_or_rejects_as_the_offer_says(pool, world):
    await store_clicks(pool, world, CLICKED, CLICKED - dt.timedelta(seconds=5))
    await store_conversion(pool, world, IP)
    suspicious = item(world, click_user_agent="curl/8.0", converted_at=CLICKED + dt.timedelta(seconds=1),
                      click_ip=IP, conversion_country="FR")
    thresholds = dict(click_flood_max_per_minute=1, repeat_ip_max_earlier=0)
    codes = ["bot_user_agent", "too_fast", "click_flood", "repeat_ip", "country_mismatch"]
    [flagged] = await judge(pool, [suspicious], policy(**thresholds))
    assert flagged.action == "flag" and [v.code for v in flagged.flagged] == codes and not flagged.rejected
    assert flagged.reason == "bot_user_agent"
    [rejected] = await judge(pool, [suspicious], policy(**thresholds, too_fast="reject", country_mismatch="reject"))
    assert rejected.action == "reject" and rejected.reason == "too_fast"
    assert [v.code for v in rejected.rejected] == ["too_fast", "country_mismatch"]
    assert [v.code for v in rejected.flagged] == ["bot_user_agent", "click_flood", "repeat_ip"]


# -- cost and robustness ---------------------------------------------------------------

async def test_one_query_per_batch_and_none_when_the_policies_need_no_count(pool, world):
    queries: list[str] = []
    counting = policy(click_flood_max_per_minute=10, repeat_ip_max_earlier=3)
    async with pool.acquire() as conn:
        await gather_signals(conn, [item(world)])  # asyncpg learns the types it has not seen yet
        conn.add_query_logger(lambda record: queries.append(record.query))
        signals = await gather_signals(conn, [item(world, policy=counting) for _ in range(50)])
        await asyncio.sleep(0)  # asyncpg calls query loggers soon after, not during, the query
        assert len(queries) == 1 and all(s.clicks_from_ip_last_minute == 0 for s in signals)
        signals = await gather_signals(conn, [item(world, policy=policy()) for _ in range(50)])
        await asyncio.sleep(0)
        assert len(queries) == 1  # no round trip
        assert all(s.clicks_from_ip_last_minute is None and s.earlier_conversions_from_ip is None for s in signals)
        only_repeat = await gather_signals(conn, [item(world, policy=policy(repeat_ip_max_earlier=0))])
        assert only_repeat[0].clicks_from_ip_last_minute is None and only_repeat[0].earlier_conversions_from_ip == 0
        assert await gather_signals(conn, []) == []


async def test_an_address_postgres_would_refuse_is_no_address_not_a_failed_batch(pool, world):
    [outcome] = await judge(pool, [item(world, click_ip="999.1.2.3")], policy(click_flood_max_per_minute=0))
    assert outcome.action == "accept"
    async with pool.acquire() as conn:
        [raw] = await gather_signals(conn, [item(world, click_ip="not an address")])
    assert raw.clicks_from_ip_last_minute is None and raw.earlier_conversions_from_ip is None
