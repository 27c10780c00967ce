"""Click caps end to end: clicks through the edge and the ingest worker reach a cap, the
worker republishes the links under it, and the edge sends the next visitors to the
fallback (``fallback_capped``). Counting is from inserted rows, so redelivery counts
nothing twice."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from urllib.parse import urlsplit

import msgspec
import pytest

from core.models import FALLBACK_CAPPED, FALLBACK_GEO, LinkConfig, link_config_decoder
from core.store.click_counters import NIL_AFFILIATE, CrossedCap, count_capped_clicks
from core.store.clicks import NewClicks
from core.store.link_configs import load_link_configs, publish_links
from tests.edge.conftest import edge, edge_settings, stream_records, wait_for  # noqa: F401 (fixtures)
from tests.workers.clicks import make_click, push, run_once_dying_before_ack

FALLBACK = "https://fallback.example/full"
UTC = dt.timezone.utc


class Offer(msgspec.Struct, kw_only=True):
    org_id: str
    offer_id: str
    affiliates: list[str]
    tokens: dict[str, str]  # affiliate id -> its link's token
    link_ids: dict[str, str]


async def make_offer(pool, caps: dict, *, affiliates: int = 1, geo_deny: list[str] | None = None) -> Offer:
    async with pool.acquire() as conn, conn.transaction():
        org = await conn.fetchval("insert into organizations (name) values ('Org') returning id")
        adv = await conn.fetchval("insert into advertisers (org_id, name) values ($1, 'Adv') returning id", org)
        offer = await conn.fetchval(
            "insert into offers (org_id, advertiser_id, name, destination_url, fallback_url, caps, geo_deny)"
            " values ($1, $2, 'Offer', 'https://shop.example/?c={click_id}', $3, $4::jsonb, $5) returning id",
            org, adv, FALLBACK, caps, geo_deny or [])
        affs, tokens, link_ids = [], {}, {}
        for _ in range(affiliates):
            aff = str(await conn.fetchval(
                "insert into affiliates (org_id, name) values ($1, 'Aff') returning id", org))
            tokens[aff] = secrets.token_urlsafe(12)
            link_ids[aff] = str(await conn.fetchval(
                "insert into links (org_id, offer_id, affiliate_id, token) values ($1, $2, $3, $4) returning id",
                org, offer, uuid.UUID(aff), tokens[aff]))
            affs.append(aff)
    return Offer(org_id=str(org), offer_id=str(offer), affiliates=affs, tokens=tokens, link_ids=link_ids)


async def publish_offer(pool, redis, keys, offer: Offer) -> None:
    """What the api does when an offer or link changes."""
    async with pool.acquire() as conn:
        await publish_links(redis, keys, await load_link_configs(conn, offer.org_id, offer_id=offer.offer_id))


async def published(redis, keys, token: str) -> LinkConfig:
    return link_config_decoder.decode(await redis.hget(keys.link_configs, token))


def clicks_for(offer: Offer, affiliate: str, count: int, ts_ms: int | None = None, **fields):
    return [
        make_click(ts_ms, org_id=offer.org_id, offer_id=offer.offer_id, affiliate_id=affiliate,
                   link_id=offer.link_ids[affiliate], **fields)
        for _ in range(count)
    ]


async def counters(pool, offer: Offer) -> dict[tuple[str, str], int]:
    """(affiliate id or "offer", period) -> clicks counted."""
    rows = await pool.fetch(
        "select affiliate_id, period, clicks from click_counters where offer_id = $1", uuid.UUID(offer.offer_id))
    return {("offer" if r["affiliate_id"] == NIL_AFFILIATE else str(r["affiliate_id"]), r["period"]): r["clicks"]
            for r in rows}


def end_of_day_ms(ts_ms: int) -> int:
    day = dt.datetime.fromtimestamp(ts_ms / 1000, UTC).date() + dt.timedelta(days=1)
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def end_of_month_ms(ts_ms: int) -> int:
    at = dt.datetime.fromtimestamp(ts_ms / 1000, UTC)
    year, month = (at.year + 1, 1) if at.month == 12 else (at.year, at.month + 1)
    return int(dt.datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000)


async def test_a_daily_cap_reached_through_the_pipeline_sends_the_edge_to_the_fallback(
    pool, redis, keys, edge, make_consumer,
):
    app, client = edge
    offer = await make_offer(pool, {"offer": {"daily_clicks": 3}})
    [aff] = offer.affiliates
    token = offer.tokens[aff]
    await publish_offer(pool, redis, keys, offer)
    consumer = make_consumer()

    for _ in range(2):
        assert urlsplit((await client.get(f"/c/{token}")).headers["location"]).netloc == "shop.example"
    await consumer.drain()
    assert (await published(redis, keys, token)).click_capped_until_ms == 0  # 2 of 3

    third = await client.get(f"/c/{token}")
    assert urlsplit(third.headers["location"]).netloc == "shop.example"
    await consumer.drain()

    last_ms = await pool.fetchval("select (extract(epoch from max(clicked_at)) * 1000)::bigint from clicks")
    until_ms = end_of_day_ms(last_ms)
    assert (await published(redis, keys, token)).click_capped_until_ms == until_ms

    async def edge_knows() -> bool:
        return app.runtime.cache.entries[token].config.click_capped_until_ms == until_ms

    assert await wait_for(edge_knows)

    capped = await client.get(f"/c/{token}")
    assert capped.status_code == 302
    assert capped.headers["location"] == FALLBACK
    last = (await stream_records(redis, keys.click_stream(0)))[-1]
    assert last.outcome == FALLBACK_CAPPED
    await consumer.drain()
    # Fallback clicks never reached the offer: they are stored, not counted against it.
    assert await counters(pool, offer) == {("offer", "day"): 3}
    assert await pool.fetchval("select count(*) from clicks where outcome = $1", FALLBACK_CAPPED) == 1


async def test_a_per_affiliate_cap_caps_only_that_affiliates_links(pool, redis, keys, make_consumer):
    offer = await make_offer(pool, {"per_affiliate": {"daily_clicks": 2}}, affiliates=3)
    capped, other, overridden = offer.affiliates
    async with pool.acquire() as conn:  # the third affiliate has its own, higher limit
        await conn.execute(
            "update offers set caps = $1::jsonb where id = $2",
            {"per_affiliate": {"daily_clicks": 2}, "affiliate_overrides": {overridden: {"daily_clicks": 5}}},
            uuid.UUID(offer.offer_id))
    await publish_offer(pool, redis, keys, offer)

    batch = clicks_for(offer, capped, 2) + clicks_for(offer, other, 1) + clicks_for(offer, overridden, 4)
    await push(redis, keys, batch)
    await make_consumer().drain()

    assert (await published(redis, keys, offer.tokens[capped])).click_capped_until_ms == end_of_day_ms(batch[0].ts_ms)
    assert (await published(redis, keys, offer.tokens[other])).click_capped_until_ms == 0
    assert (await published(redis, keys, offer.tokens[overridden])).click_capped_until_ms == 0
    # Only the limits that exist are counted: no offer-wide row, no monthly rows.
    assert await counters(pool, offer) == {(capped, "day"): 2, (other, "day"): 1, (overridden, "day"): 4}

    await push(redis, keys, clicks_for(offer, overridden, 1))
    await make_consumer().drain()
    assert (await published(redis, keys, offer.tokens[overridden])).click_capped_until_ms > 0
    assert (await published(redis, keys, offer.tokens[other])).click_capped_until_ms == 0


async def test_a_redelivered_batch_counts_nothing_twice(pool, redis, keys, make_consumer):
    offer = await make_offer(pool, {"offer": {"daily_clicks": 100, "monthly_clicks": 1000}})
    [aff] = offer.affiliates
    await push(redis, keys, clicks_for(offer, aff, 3))
    await run_once_dying_before_ack(make_consumer("c1"))  # committed, never acked

    counts = await make_consumer("c1").drain()  # the same consumer back: re-reads its pending entry

    assert (counts.clicks_read, counts.clicks_inserted) == (3, 0)
    assert await counters(pool, offer) == {("offer", "day"): 3, ("offer", "month"): 3}
    assert await pool.fetchval("select count(*) from clicks") == 3


async def test_monthly_cap_lasts_to_the_end_of_the_month_and_the_later_end_wins(pool, redis, keys, make_consumer):
    offer = await make_offer(pool, {"offer": {"daily_clicks": 2, "monthly_clicks": 2}})
    [aff] = offer.affiliates
    await publish_offer(pool, redis, keys, offer)
    batch = clicks_for(offer, aff, 2)
    await push(redis, keys, batch)
    await make_consumer().drain()

    assert (await published(redis, keys, offer.tokens[aff])).click_capped_until_ms == end_of_month_ms(batch[0].ts_ms)


async def test_clicks_the_edge_did_not_redirect_are_not_counted(pool, redis, keys, make_consumer):
    offer = await make_offer(pool, {"offer": {"daily_clicks": 2}}, geo_deny=["DE"])
    [aff] = offer.affiliates
    await push(redis, keys, clicks_for(offer, aff, 5, outcome=FALLBACK_GEO) + clicks_for(offer, aff, 1))
    await make_consumer().drain()

    assert await counters(pool, offer) == {("offer", "day"): 1}


async def test_offers_without_click_caps_keep_no_counters(pool, redis, keys, make_consumer):
    offer = await make_offer(pool, {"offer": {"daily_conversions": 1}})
    [aff] = offer.affiliates
    await push(redis, keys, clicks_for(offer, aff, 3))
    await make_consumer().drain()

    assert await counters(pool, offer) == {}
    assert await pool.fetchval("select count(*) from clicks") == 3


# -- the store: crossing, periods, the config's clock --------------------------------

DAY = dt.date(2030, 3, 31)


def new_clicks(offer: Offer, affiliate: str, redirects: int, day: dt.date = DAY) -> NewClicks:
    return NewClicks(uuid.UUID(offer.org_id), uuid.UUID(offer.offer_id), uuid.UUID(affiliate), day,
                     redirects, redirects)


async def test_a_cap_is_reported_reached_once_by_the_call_that_crossed_it(pool):
    offer = await make_offer(pool, {"offer": {"daily_clicks": 5}, "per_affiliate": {"monthly_clicks": 3}})
    [aff] = offer.affiliates
    org, offer_id = uuid.UUID(offer.org_id), uuid.UUID(offer.offer_id)
    async with pool.acquire() as conn:
        first = await count_capped_clicks(conn, [new_clicks(offer, aff, 2)])
        second = await count_capped_clicks(conn, [new_clicks(offer, aff, 2)])  # affiliate: 4 >= 3
        third = await count_capped_clicks(conn, [new_clicks(offer, aff, 1)])  # offer: 5 >= 5
        fourth = await count_capped_clicks(conn, [new_clicks(offer, aff, 1)])  # past both already

    assert first == []
    assert second == [CrossedCap(org, offer_id, uuid.UUID(aff))]
    assert third == [CrossedCap(org, offer_id, None)]
    assert fourth == []


def at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def ms(day: dt.date) -> int:
    return int(at(day, 0).timestamp() * 1000)


async def test_the_config_counts_only_the_current_period_and_takes_the_later_end(pool):
    offer = await make_offer(pool, {"offer": {"daily_clicks": 2, "monthly_clicks": 3}})
    [aff] = offer.affiliates
    mar_14, mar_15, mar_16, apr_1 = dt.date(2030, 3, 14), dt.date(2030, 3, 15), dt.date(2030, 3, 16), dt.date(2030, 4, 1)
    async with pool.acquire() as conn:

        async def until(now: dt.datetime) -> int:
            [config] = await load_link_configs(conn, offer.org_id, now=now)
            return config.click_capped_until_ms

        await count_capped_clicks(conn, [new_clicks(offer, aff, 2, mar_15)])  # the 15th is full
        assert await until(at(mar_14)) == 0
        assert await until(at(mar_15)) == ms(mar_16)
        assert await until(at(mar_15, 23)) == ms(mar_16)
        assert await until(at(mar_16, 0)) == 0  # a new day

        await count_capped_clicks(conn, [new_clicks(offer, aff, 1, mar_14)])  # and now March is full
        assert await until(at(mar_14)) == ms(apr_1)
        assert await until(at(mar_15)) == ms(apr_1)  # both reached: the later end
        assert await until(at(apr_1, 0)) == 0  # a new month


@pytest.mark.parametrize("caps", [{"offer": {"daily_clicks": 0}}, {"per_affiliate": {"monthly_clicks": 0}}])
async def test_a_zero_limit_caps_from_the_start(pool, caps):
    offer = await make_offer(pool, caps)
    async with pool.acquire() as conn:
        [config] = await load_link_configs(conn, offer.org_id)
    assert config.click_capped_until_ms > 0


async def test_links_of_offers_without_caps_are_never_capped(pool, redis, keys):
    offer = await make_offer(pool, {})
    async with pool.acquire() as conn:
        [config] = await load_link_configs(conn, offer.org_id)
    assert config.click_capped_until_ms == 0
    assert config.affiliate_id == offer.affiliates[0]
