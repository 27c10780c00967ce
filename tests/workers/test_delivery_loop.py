"""The delivery worker as it runs in production: LISTEN wake-ups, the dispatcher and the
sender loops, fed by the real conversion worker. A conversion becomes the affiliate's
postback, with the click's subs in it, without any polling delay; stopping finishes the
requests under way."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import msgspec

from core.store.deliveries import DELIVERIES_CHANNEL, OUTBOX_CHANNEL, set_paused
from tests.workers.conversions import make_world, postback, push_postbacks, stored_click
from tests.workers.deliveries import add_endpoint, local_policy
from tests.workers.receivers import receivers
from workers.conversion_ingest import ConversionIngest
from workers.delivery_dispatcher import OutboxDispatcher
from workers.delivery_sender import DeliverySender
from workers.delivery_wakeups import Listener


async def _until(predicate, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def _until_async(read, expected, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while await read() != expected:
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _count_claims(sender: DeliverySender) -> list[tuple[float, int]]:
    """Record each claim the sender makes: (when it started, on the loop's clock; how many it got)."""
    claims: list[tuple[float, int]] = []
    claim = sender._claim

    async def counted(limit: int):
        started = asyncio.get_running_loop().time()
        due = await claim(limit)
        claims.append((started, len(due)))
        return due

    sender._claim = counted
    return claims


async def test_a_conversion_reaches_the_affiliates_postback_through_the_running_loops(pool, redis, keys, settings):
    # A poll interval far longer than the test: only NOTIFY can make this quick.
    s = msgspec.structs.replace(settings, delivery_poll_interval_ms=60_000, conversion_batch_max_wait_ms=10)
    world = await make_world(pool, payout_minor=725)
    click = await stored_click(pool, world, sub1="camp-7", sub2="a b", sub5="z")
    async with receivers(None) as (tracker,):
        await add_endpoint(pool, world, "postback", tracker.url(
            "/pb?cid={click_id}&s1={sub1}&s2={sub2}&s5={sub5}&p={payout}&c={currency}&st={status}&e={event_id}"))
        stop = asyncio.Event()
        listener = Listener(s.database_url, [OUTBOX_CHANNEL, DELIVERIES_CHANNEL])
        sender = DeliverySender(s, pool, outbound=local_policy(tracker.port))
        claims = _count_claims(sender)
        tasks = [asyncio.create_task(listener.run_forever(stop)),
                 asyncio.create_task(OutboxDispatcher(s, pool).run_forever(stop, listener.events[OUTBOX_CHANNEL])),
                 asyncio.create_task(sender.run_forever(stop, listener.events[DELIVERIES_CHANNEL]))]
        try:
            await asyncio.wait_for(listener.listening.wait(), 10)
            await push_postbacks(redis, keys, [postback(world, click.click_id, "order-9")])
            await ConversionIngest(s, pool, redis, keys, consumer="c1").drain()
            await _until(lambda: tracker.requests)
            query = parse_qs(urlsplit(tracker.requests[0].target).query, keep_blank_values=True)
            assert {k: v[0] for k, v in query.items() if k != "e"} == {
                "cid": click.click_id, "s1": "camp-7", "s2": "a b", "s5": "z", "p": "7.25", "c": "USD",
                "st": "approved"}
            assert query["e"][0] == tracker.requests[0].headers["afftok-event-id"]

            async with pool.acquire() as conn:  # the kill switch, without a restart
                await set_paused(conn, True, "test")
            await push_postbacks(redis, keys, [postback(world, click.click_id, "order-10")])
            await ConversionIngest(s, pool, redis, keys, consumer="c1").drain()
            await _until_async(lambda: pool.fetchval("select count(*) from deliveries where status = 'pending'"), 1)
            # The sender looks again after the delivery exists, and claims nothing while paused.
            mark = asyncio.get_running_loop().time()
            listener.events[DELIVERIES_CHANNEL].set()
            await _until(lambda: any(started > mark for started, _ in claims))
            assert [n for started, n in claims if started > mark][0] == 0
            assert len(tracker.requests) == 1
            assert await pool.fetchval("select count(*) from deliveries where status = 'pending'") == 1
            async with pool.acquire() as conn:
                await set_paused(conn, False, "test")
            await _until(lambda: len(tracker.requests) == 2)
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*tasks), 15)
    assert await pool.fetchval("select count(*) from deliveries where status = 'delivered'") == 2
