"""The conversion worker end to end from the stream: attribution, waits, dedupe, the
lifecycle and its history, commissions, fraud rules, caps, and exactly-once delivery."""

from __future__ import annotations

import asyncio
import uuid

import msgspec
import pytest

from core.fraud_rules import CidrList
from core.store import conversion_caps
from core.store.conversion_status import change_conversion_status
from tests.workers.conversions import (
    Clock, click_of, conversions, history, make_world, now_ms, outbox, postback, push_postbacks,
    stored_click,
)
from tests.workers.clicks import push, run_once_dying_before_ack
from workers.conversion_ingest import ConversionIngest

MIN = 60_000


@pytest.fixture
def conv_settings(settings):
    return msgspec.structs.replace(settings, conversion_click_wait_s=600, conversion_wait_retry_ms=1000,
                                   conversion_batch_max_wait_ms=10, ingest_reclaim_idle_ms=60_000)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_worker(conv_settings, pool, redis, keys, clock):
    def build(name: str = "w1", **kwargs) -> ConversionIngest:
        return ConversionIngest(conv_settings, pool, redis, keys, consumer=name, clock=clock, **kwargs)

    return build


async def test_one_postback_replayed_five_times_is_one_conversion_and_one_commission(pool, redis, keys, make_worker):
    world = await make_world(pool)
    click = await stored_click(pool, world, now_ms() - 5 * MIN)
    record = postback(world, click.click_id, "order-1", amount_minor=2000, currency="USD")
    for _ in range(5):
        await push_postbacks(redis, keys, [record])  # the same postback id each time: edge retries
    for _ in range(5):
        await push_postbacks(redis, keys, [postback(world, click.click_id, "order-1")])  # advertiser retries
    await make_worker().drain()

    [row] = await conversions(pool)
    assert (row["status"], row["revenue_minor"], row["payout_minor"], row["currency"]) == ("approved", 500, 300, "USD")
    assert (row["click_id"], str(row["offer_id"]), str(row["affiliate_id"])) == (
        click.click_id, world.offer_id, world.affiliate_id)
    [created] = await history(pool)
    assert (created["to_status"], created["payout_delta_minor"], created["revenue_delta_minor"]) == ("approved", 300, 500)
    assert [e["event_type"] for e in await outbox(pool)] == ["conversion.created"]
    assert "revenue" not in str((await outbox(pool))[0]["payload"])
    assert await pool.fetchval("select approved from conversion_counters where period = 'month'") == 1
    assert await redis.xpending(keys.conversion_stream(0), "conversions") == {
        "pending": 0, "min": None, "max": None, "consumers": []}


async def test_a_conversion_sent_1_ms_after_its_click_waits_for_the_click_and_is_attributed(
    pool, redis, keys, make_worker, make_consumer, clock,
):
    world = await make_world(pool, fraud_policy={"too_fast": "flag"})
    click = click_of(world)
    await push(redis, keys, [click])  # on the click stream, not yet in Postgres
    await push_postbacks(redis, keys, [postback(world, click.click_id, "fast", ts_ms=click.ts_ms + 1)])
    worker = make_worker()
    await worker.drain()
    assert await conversions(pool) == []  # waiting, not rejected
    assert await pool.fetchval("select count(*) from conversion_waits") == 1

    await make_consumer().drain()  # the click reaches Postgres
    clock.advance(1.5)  # the wait's next try is due
    await worker.drain()
    [row] = await conversions(pool)
    assert (row["status"], row["click_id"], row["reason"]) == ("approved", click.click_id, "too_fast")
    assert row["fraud_flags"] == ["too_fast"]  # flagged, not rejected: 1 ms is suspicious, not proof
    assert await pool.fetchval("select count(*) from conversion_waits") == 0


async def test_pending_approved_reversed_nets_to_zero_with_the_history_intact(pool, redis, keys, make_worker):
    world = await make_world(pool)
    click = await stored_click(pool, world, now_ms() - 5 * MIN)
    worker = make_worker()
    for status in ("pending", "approved", "rejected"):  # rejected on approved = reversed
        await push_postbacks(redis, keys, [postback(world, click.click_id, "o-9", status=status, actor="postback:token")])
        await worker.drain()
    [row] = await conversions(pool)
    assert row["status"] == "reversed"
    rows = await history(pool, row["id"])
    assert [(h["from_status"], h["to_status"]) for h in rows] == [
        (None, "pending"), ("pending", "approved"), ("approved", "reversed")]
    assert [h["payout_delta_minor"] for h in rows] == [0, 300, -300]
    assert sum(h["payout_delta_minor"] for h in rows) == 0 and sum(h["revenue_delta_minor"] for h in rows) == 0
    assert all(h["actor"] == "postback:token" for h in rows)
    assert [e["event_type"] for e in await outbox(pool)] == [
        "conversion.created", "conversion.approved", "conversion.reversed"]
    assert await pool.fetchval("select approved from conversion_counters where period = 'month'") == 0

    # final: a later "approved" cannot revive it, and it says so in the metrics, not the table
    await push_postbacks(redis, keys, [postback(world, click.click_id, "o-9", status="approved")])
    applied = await worker.drain()
    assert applied.invalid_transitions == 1 and len(await history(pool, row["id"])) == 3


async def test_an_unknown_click_waits_then_is_stored_rejected_for_the_advertiser_to_see(
    pool, redis, keys, make_worker, clock,
):
    world = await make_world(pool)
    missing = click_of(world).click_id  # well formed, never stored
    worker = make_worker()
    await push_postbacks(redis, keys, [postback(world, missing, "lost")])
    await worker.drain()
    assert await conversions(pool) == []
    clock.advance(601)
    await worker.drain()
    [row] = await conversions(pool)
    assert (row["status"], row["reason"], row["click_id"], row["offer_id"]) == ("rejected", "unknown_click", missing, None)
    assert [h["to_status"] for h in await history(pool)] == ["rejected"]
    assert await outbox(pool) == []  # no affiliate to tell


async def test_another_organizations_click_id_behaves_exactly_like_an_unknown_one(
    pool, redis, keys, make_worker, clock,
):
    ours, theirs = await make_world(pool), await make_world(pool)
    their_click = await stored_click(pool, theirs, now_ms() - MIN)
    unknown = click_of(ours, their_click.ts_ms).click_id
    worker = make_worker()
    await push_postbacks(redis, keys, [postback(ours, their_click.click_id, "a"), postback(ours, unknown, "b")])
    await worker.drain()
    assert await conversions(pool) == []  # both wait
    clock.advance(601)
    await worker.drain()
    rows = {r["external_id"]: r for r in await conversions(pool)}
    fields = ("status", "reason", "offer_id", "affiliate_id", "clicked_at", "revenue_minor", "payout_minor", "org_id")
    assert {f: rows["a"][f] for f in fields} == {f: rows["b"][f] for f in fields}
    assert rows["a"]["reason"] == "unknown_click"


async def test_a_click_id_that_is_not_ours_is_unknown_at_once(pool, redis, keys, make_worker):
    world = await make_world(pool)
    await push_postbacks(redis, keys, [postback(world, "ABC-123", "x")])
    await make_worker().drain()
    [row] = await conversions(pool)
    assert (row["status"], row["reason"], row["click_id"]) == ("rejected", "unknown_click", "ABC-123")


async def test_outside_the_attribution_window_is_rejected(pool, redis, keys, make_worker):
    world = await make_world(pool, window_s=3600)
    click = await stored_click(pool, world, now_ms() - 2 * 3600 * 1000)
    await push_postbacks(redis, keys, [postback(world, click.click_id, "late")])
    await make_worker().drain()
    [row] = await conversions(pool)
    assert (row["status"], row["reason"]) == ("rejected", "outside_window")


async def test_commissions_follow_the_offers_rules(pool, redis, keys, make_worker):
    rules = {"goals": [
        {"goal": None, "revenue": {"type": "percentage", "bps": 1000}, "payout": {"type": "tiered", "tiers": [
            {"min_conversions": 0, "rule": {"type": "flat", "amount_minor": 100}},
            {"min_conversions": 2, "rule": {"type": "flat", "amount_minor": 150}}]}},
    ]}
    world = await make_world(pool, commission=rules, currency="EUR")
    click = await stored_click(pool, world, now_ms() - MIN)
    sales = [postback(world, click.click_id, f"s-{n}", amount_minor=12345, currency="EUR") for n in range(3)]
    await push_postbacks(redis, keys, sales)
    await push_postbacks(redis, keys, [postback(world, click.click_id, "usd", amount_minor=100, currency="USD"),
                                       postback(world, click.click_id, "no-amount"),
                                       postback(world, click.click_id, "goal", goal="lead", amount_minor=1, currency="EUR")])
    await make_worker().drain()
    rows = {r["external_id"]: r for r in await conversions(pool)}
    assert [rows[f"s-{n}"]["revenue_minor"] for n in range(3)] == [1234, 1234, 1234]  # 1234.5 → 1234 half-even
    assert [rows[f"s-{n}"]["payout_minor"] for n in range(3)] == [100, 100, 150]  # tier from the 3rd approval
    assert (rows["usd"]["status"], rows["usd"]["reason"]) == ("rejected", "currency_mismatch")
    assert (rows["no-amount"]["status"], rows["no-amount"]["reason"]) == ("rejected", "missing_amount")
    assert (rows["goal"]["status"], rows["goal"]["reason"]) == ("approved", None)  # the default goal's rules


async def test_a_goal_the_offer_has_no_rule_for_is_rejected_unknown_goal(pool, redis, keys, make_worker):
    rules = {"goals": [{"goal": "sale", "revenue": {"type": "flat", "amount_minor": 900},
                        "payout": {"type": "flat", "amount_minor": 600}}]}
    world = await make_world(pool, commission=rules)
    click = await stored_click(pool, world, now_ms() - MIN)
    await push_postbacks(redis, keys, [postback(world, click.click_id, "a", goal="sale"),
                                       postback(world, click.click_id, "b", goal="lead")])
    await make_worker().drain()
    rows = {r["external_id"]: r for r in await conversions(pool)}
    assert (rows["a"]["status"], rows["a"]["payout_minor"]) == ("approved", 600)
    assert (rows["b"]["status"], rows["b"]["reason"], rows["b"]["payout_minor"]) == ("rejected", "unknown_goal", 0)


async def test_a_poison_entry_is_dead_lettered_and_the_rest_applied(pool, redis, keys, make_worker):
    world = await make_world(pool)
    click = await stored_click(pool, world, now_ms() - MIN)
    await redis.xadd(keys.conversion_stream(0), {b"v": b"1", b"p": b"\xc1garbage"})
    await redis.xadd(keys.conversion_stream(0), {b"v": b"9", b"p": b""})
    await push_postbacks(redis, keys, [postback(world, click.click_id, "ok")])
    await make_worker().drain()
    assert [r["external_id"] for r in await conversions(pool)] == ["ok"]
    dead = await redis.xrange(keys.conversion_dead_letters)
    assert len(dead) == 2 and all(b"reason" in fields for _, fields in dead)


async def test_a_consumer_dying_between_commit_and_ack_doubles_nothing(pool, redis, keys, make_worker):
    world = await make_world(pool)
    click = await stored_click(pool, world, now_ms() - MIN)
    ids = [f"o-{n}" for n in range(50)]
    await push_postbacks(redis, keys, [postback(world, click.click_id, i) for i in ids])
    await run_once_dying_before_ack(make_worker("dies"))
    assert len(await conversions(pool)) == 50  # committed
    assert (await redis.xpending(keys.conversion_stream(0), "conversions"))["pending"] == 1  # never acked
    survivor = make_worker("survivor")
    survivor.settings = msgspec.structs.replace(survivor.settings, ingest_reclaim_idle_ms=0)
    await survivor.drain()
    assert sorted(r["external_id"] for r in await conversions(pool)) == sorted(ids)
    assert await pool.fetchval("select count(*) from conversion_status_history") == 50
    assert await pool.fetchval("select count(*) from outbox_events") == 50


async def test_every_accepted_postback_id_ends_up_in_postgres_once(pool, redis, keys, make_worker):
    world = await make_world(pool)
    clicks = [await stored_click(pool, world, now_ms() - MIN - n) for n in range(20)]
    records = [postback(world, clicks[n % 20].click_id, f"id-{n}") for n in range(1000)]
    for i in range(0, 1000, 37):
        await push_postbacks(redis, keys, records[i:i + 37])
    workers = [make_worker(f"w{n}") for n in range(3)]
    await asyncio.gather(*(w.drain() for w in workers))
    rows = await conversions(pool)
    assert sorted(r["postback_id"] for r in rows) == sorted(r.postback_id for r in records)
    assert len({r["external_id"] for r in rows}) == 1000


# -- caps --------------------------------------------------------------------------

async def test_200_concurrent_conversions_against_a_cap_of_100_leak_at_most_one(pool, redis, keys, database_url):
    from core.db import create_pool

    world = await make_world(pool, caps={"offer": {"daily_conversions": 100}})
    from core.caps import Caps
    caps = msgspec.convert({"offer": {"daily_conversions": 100}}, Caps)
    many = await create_pool(database_url, min_size=20, max_size=40)
    claim = conversion_caps.CapClaim(uuid.UUID(world.org_id), uuid.UUID(world.offer_id),
                                     uuid.UUID(world.affiliate_id), Clock()(), 300)

    async def one() -> bool:
        async with many.acquire() as conn, conn.transaction():
            return (await conversion_caps.claim_caps(conn, claim, caps)).within

    try:
        results = await asyncio.gather(*(one() for _ in range(200)))
    finally:
        await many.close()
    counted = await pool.fetchval(
        "select conversions from conversion_counters where affiliate_id = '00000000-0000-0000-0000-000000000000'")
    assert sum(results) == counted
    assert 100 <= counted <= 101


async def test_200_postbacks_through_concurrent_workers_against_a_cap_of_100(pool, redis, keys, make_worker):
    world = await make_world(pool, caps={"offer": {"daily_conversions": 100}, "over_cap": "reject"})
    click = await stored_click(pool, world, now_ms() - MIN)
    for n in range(0, 200, 10):
        await push_postbacks(redis, keys, [postback(world, click.click_id, f"c-{n + i}") for i in range(10)])
    await asyncio.gather(*(make_worker(f"w{n}").drain() for n in range(4)))
    rows = await conversions(pool)
    approved = [r for r in rows if r["status"] == "approved"]
    assert len(rows) == 200 and 100 <= len(approved) <= 101
    assert {r["reason"] for r in rows if r["status"] == "rejected"} == {"cap_reached"}
    assert [e["payload"]["limit"] for e in await outbox(pool) if e["event_type"] == "cap.reached"] == [
        "offer.daily_conversions"]


async def test_over_a_payout_cap_the_pending_policy_holds_conversions_for_review(pool, redis, keys, make_worker):
    world = await make_world(pool, caps={"per_affiliate": {"monthly_payout_minor": 600}, "over_cap": "pending"})
    click = await stored_click(pool, world, now_ms() - MIN)
    await push_postbacks(redis, keys, [postback(world, click.click_id, f"p-{n}") for n in range(3)])
    await make_worker().drain()
    rows = await conversions(pool)
    assert [(r["status"], r["reason"]) for r in rows] == [("approved", None), ("approved", None),
                                                          ("pending", "cap_reached")]
    # an operator approves the held one: counted past the cap; rejecting a counted one frees its place
    async with pool.acquire() as conn, conn.transaction():
        change = await change_conversion_status(
            conn, org_id=rows[2]["org_id"], conversion_id=rows[2]["id"], to_status="approved", reason="ok'd",
            actor="user:ops", correlation_id="c")
        await change_conversion_status(
            conn, org_id=rows[0]["org_id"], conversion_id=rows[0]["id"], to_status="reversed", reason="refund",
            actor="user:ops", correlation_id="c")
    assert (change.from_status, change.payout_delta_minor) == ("pending", 300)
    assert await pool.fetchval("select payout_minor from conversion_counters where affiliate_id <> "
                               "'00000000-0000-0000-0000-000000000000' and period = 'month'") == 600


async def test_a_replayed_approval_does_not_lift_a_hold_over_a_cap(pool, redis, keys, make_worker):
    world = await make_world(pool, caps={"offer": {"daily_conversions": 1}, "over_cap": "pending"})
    click = await stored_click(pool, world, now_ms() - MIN)
    first, held = postback(world, click.click_id, "first"), postback(world, click.click_id, "held")
    worker = make_worker()
    await push_postbacks(redis, keys, [first, held])
    await worker.drain()
    for replay in (held, postback(world, click.click_id, "held")):  # the edge's retry, the advertiser's
        await push_postbacks(redis, keys, [replay])
        applied = await worker.drain()
        assert applied.unchanged == 1
    rows = {r["external_id"]: r for r in await conversions(pool)}
    assert (rows["held"]["status"], rows["held"]["reason"], rows["held"]["cap_counted"]) == (
        "pending", "cap_reached", False)
    assert len(await history(pool, rows["held"]["id"])) == 1
    assert await pool.fetchval("select max(conversions) from conversion_counters") == 1
    # the advertiser may still reject it; only an operator approves past the cap
    await push_postbacks(redis, keys, [postback(world, click.click_id, "held", status="rejected")])
    await worker.drain()
    assert (await pool.fetchval("select status from conversions where external_id = 'held'")) == "rejected"


# -- fraud rules: one case each ---------------------------------------------------------

REJECT_ALL = {"bot_user_agent": "reject", "too_fast": "reject", "min_seconds_to_convert": 10,
              "click_flood": "reject", "click_flood_max_per_minute": 3, "repeat_ip": "reject",
              "repeat_ip_max_earlier": 1, "datacenter_ip": "reject", "country_mismatch": "reject"}


@pytest.mark.parametrize("rule", ["bot_user_agent", "too_fast", "click_flood", "repeat_ip", "datacenter_ip",
                                  "country_mismatch"])
async def test_each_fraud_rule_rejects_with_its_reason_and_flags_when_told(pool, redis, keys, make_worker, rule):
    for action in ("reject", "flag"):
        policy = {**REJECT_ALL, rule: action} if action == "flag" else REJECT_ALL
        world = await make_world(pool, fraud_policy=policy)
        base = now_ms() - 5 * MIN
        ip = "198.51.100.9" if rule == "datacenter_ip" else f"203.0.113.{len(rule)}"
        ua = "python-requests/2.31" if rule == "bot_user_agent" else "Mozilla/5.0 (Windows NT 10.0)"
        click = await stored_click(pool, world, base, ip=ip, user_agent=ua, country="DE")
        extra = {}
        if rule == "too_fast":
            extra["ts_ms"] = base + 2000
        if rule == "click_flood":
            for n in range(1, 4):
                await stored_click(pool, world, base - n * 1000, ip=ip)
        if rule == "country_mismatch":
            extra["country"] = "FR"
        if rule == "repeat_ip":
            other = await stored_click(pool, world, base - 60 * MIN, ip=ip)
            for n in range(2):
                await push_postbacks(redis, keys, [postback(world, other.click_id, f"earlier-{n}-{action}")])
            await make_worker(datacenter=None).drain()
        await push_postbacks(redis, keys, [postback(world, click.click_id, f"judged-{action}", **extra)])
        await make_worker(datacenter=CidrList.parse("198.51.100.0/24")).drain()
        row = await pool.fetchrow("select * from conversions where external_id = $1", f"judged-{action}")
        assert rule in row["fraud_flags"], (action, row["fraud_flags"])
        if action == "reject":
            assert (row["status"], row["reason"]) == ("rejected", rule)
        else:
            assert row["status"] == "approved" and row["reason"] == rule


async def test_repeat_conversions_from_one_address_count_earlier_ones_of_the_same_batch(
    pool, redis, keys, make_worker,
):
    world = await make_world(pool, fraud_policy={"repeat_ip": "reject", "repeat_ip_max_earlier": 1})
    clicks = [await stored_click(pool, world, now_ms() - 5 * MIN + n, ip="203.0.113.50") for n in range(3)]
    other = await stored_click(pool, world, now_ms() - 5 * MIN, ip="203.0.113.51")
    await push_postbacks(redis, keys, [postback(world, c.click_id, f"r-{n}") for n, c in enumerate(clicks)]
                         + [postback(world, other.click_id, "elsewhere")])
    await make_worker().drain()
    rows = {r["external_id"]: r for r in await conversions(pool)}
    assert [(rows[f"r-{n}"]["status"], rows[f"r-{n}"]["reason"]) for n in range(3)] == [
        ("approved", None), ("approved", None), ("rejected", "repeat_ip")]
    assert (rows["elsewhere"]["status"], str(rows["elsewhere"]["ip"])) == ("approved", "203.0.113.51")
