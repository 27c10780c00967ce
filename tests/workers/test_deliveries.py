"""Outbound delivery with real local receivers: every event arrives (once per event id at
a deduping receiver) through outages, retries, pauses and replays; the policy for 4xx,
3xx and 410; signatures; auto-disable."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from urllib.parse import parse_qs, urlsplit

import msgspec
from prometheus_client import REGISTRY

from core.signatures import verify
from core.store.deliveries import set_paused
from tests.workers.conversions import make_world
from tests.workers.deliveries import (
    OLD_SECRET, SECRET, Clock, add_endpoint, add_events, drain, local_policy, replay_endpoint, worker_parts,
)
from tests.workers.receivers import Answer, receivers


async def _statuses(pool) -> dict[str, int]:
    rows = await pool.fetch("select status, count(*) from deliveries group by status")
    return {r["status"]: r["count"] for r in rows}


async def test_a_receiver_down_for_a_while_then_back_gets_every_event_once(pool, settings):
    world = await make_world(pool)
    clock = Clock()
    async with receivers(None) as (hook,):
        await add_endpoint(pool, world, "webhook", hook.url())
        dispatcher, sender = worker_parts(settings, pool, clock, local_policy(hook.port))
        first = await add_events(pool, world, 30)
        await drain(dispatcher, sender)
        await hook.down()  # an hour-long outage: events keep coming, every attempt fails
        second = await add_events(pool, world, 30)
        for _ in range(12):
            await drain(dispatcher, sender)
            clock.advance(300)
        assert (await _statuses(pool)) == {"delivered": 30, "pending": 30}
        attempts = await pool.fetchval("select count(*) from delivery_attempts where error = 'connect'")
        assert attempts >= 30 * 3
        await hook.up()
        clock.advance(3600)
        await drain(dispatcher, sender)
        assert (await _statuses(pool)) == {"delivered": 60}
        assert set(hook.event_ids) == {str(e) for e in first + second}
        assert max(hook.event_ids.values()) == 1


async def test_5xx_and_timeouts_are_retried_until_they_succeed_and_a_deduping_receiver_sees_each_event_once(
        pool, settings):
    world = await make_world(pool)
    clock = Clock()
    seen: dict[str, int] = {}

    def flaky(request):
        n = seen[request.headers["afftok-event-id"]] = seen.get(request.headers["afftok-event-id"], 0) + 1
        if n == 1:
            return Answer(status=503)  # processed, then failed: the retry is a duplicate to the receiver
        if n == 2:
            return Answer(delay_s=1.0)  # slower than the read timeout
        return Answer(status=200)

    failures = {reason: _sample("afftok_webhook_failures_total", kind="webhook", reason=reason)
                for reason in ("http_5xx", "timeout")}
    async with receivers(flaky) as (hook,):
        await add_endpoint(pool, world, "webhook", hook.url())
        dispatcher, sender = worker_parts(settings, pool, clock, local_policy(hook.port),
                                          delivery_read_timeout_ms=300)
        events = await add_events(pool, world, 20)
        await dispatcher.dispatch_once()
        await sender.measure_depth()
        assert _sample("afftok_queue_depth", stream="deliveries") == 20
        for _ in range(4):
            await drain(dispatcher, sender)
            clock.advance(600)
        assert (await _statuses(pool)) == {"delivered": 20}
        assert set(hook.event_ids) == {str(e) for e in events}
        assert set(hook.event_ids.values()) == {3}  # at least once; dedupe by the header
        errors = await pool.fetch("select status_code, error, count(*) from delivery_attempts group by 1, 2")
        assert {(r["status_code"], r["error"]): r["count"] for r in errors} == {
            (503, None): 20, (None, "timeout"): 20, (200, None): 20}
    for reason, before in failures.items():
        assert _sample("afftok_webhook_failures_total", kind="webhook", reason=reason) == before + 20
    await sender.measure_depth()
    assert _sample("afftok_queue_depth", stream="deliveries") == 0


def _sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_4xx_is_dead_at_once_429_waits_as_asked_and_410_disables_the_endpoint(pool, settings):
    world = await make_world(pool)
    clock = Clock()
    answers = {"/bad": Answer(status=400, body=b"missing field"), "/busy": Answer(status=429, headers={"Retry-After": "600"}),
               "/gone": Answer(status=410), "/moved": Answer(status=302, headers={"Location": "http://127.0.0.1:1/"})}
    async with receivers(lambda r: answers[urlsplit(r.target).path]) as (hook,):
        endpoints = {path: await add_endpoint(pool, world, "webhook", hook.url(path), affiliate=False)
                     for path in answers}
        dispatcher, sender = worker_parts(settings, pool, clock, local_policy(hook.port))
        await add_events(pool, world, 1)
        await drain(dispatcher, sender)
        rows = {r["endpoint_id"]: r for r in await pool.fetch(
            "select d.endpoint_id, d.status, d.attempts, d.next_attempt_at, d.last_status_code, e.status as endpoint,"
            " e.disabled_reason, a.response_excerpt from deliveries d join delivery_endpoints e on e.id = d.endpoint_id"
            " join delivery_attempts a on a.delivery_id = d.id")}
    bad, busy, gone, moved = (rows[endpoints[p]] for p in ("/bad", "/busy", "/gone", "/moved"))
    assert (bad["status"], bad["attempts"], bad["response_excerpt"]) == ("dead", 1, "missing field")
    assert busy["status"] == "pending" and busy["next_attempt_at"] >= clock.now + dt.timedelta(seconds=600)
    assert (gone["status"], gone["endpoint"], gone["disabled_reason"]) == ("dead", "disabled", "gone")
    assert (moved["status"], moved["last_status_code"]) == ("dead", 302)  # never followed


async def test_pausing_holds_every_request_and_resuming_delivers_everything(pool, settings):
    world = await make_world(pool)
    clock = Clock()
    async with receivers(None, None) as (postback, hook):
        await add_endpoint(pool, world, "postback", postback.url("/pb?cid={click_id}&p={payout}&e={event_id}"))
        await add_endpoint(pool, world, "webhook", hook.url())
        dispatcher, sender = worker_parts(settings, pool, clock, local_policy(postback.port, hook.port))
        async with pool.acquire() as conn:
            await set_paused(conn, True, "test")
        events = await add_events(pool, world, 25)
        await drain(dispatcher, sender)
        events += await add_events(pool, world, 25)
        await drain(dispatcher, sender)
        assert postback.connections == hook.connections == 0
        assert (await _statuses(pool)) == {"pending": 100}  # queued, nothing lost
        async with pool.acquire() as conn:
            await set_paused(conn, False, "test")
        await drain(dispatcher, sender)
    assert (await _statuses(pool)) == {"delivered": 100}
    assert set(postback.event_ids) == set(hook.event_ids) == {str(e) for e in events}
    first = parse_qs(urlsplit(postback.requests[0].target).query)
    assert first["p"] == ["12.50"] and first["cid"][0].startswith("click-")


async def test_webhooks_are_signed_by_both_live_secrets_during_rotation(pool, settings):
    world = await make_world(pool)
    clock = Clock()
    async with receivers(None) as (hook,):
        await add_endpoint(pool, world, "webhook", hook.url(), secrets=(SECRET, OLD_SECRET))
        dispatcher, sender = worker_parts(settings, pool, clock, local_policy(hook.port))
        [event_id] = await add_events(pool, world, 1)
        await drain(dispatcher, sender)
    [request] = hook.requests
    header = request.headers["afftok-signature"]
    for secret in (SECRET, OLD_SECRET):  # a receiver holding either secret accepts it
        verify(secret.encode(), header, request.body, int(clock.now.timestamp()))
    body = msgspec.json.decode(request.body)
    assert body["id"] == str(event_id) and body["type"] == "conversion.created"
    assert body["data"]["payout_minor"] == 1250 and "revenue_minor" not in body["data"]
    assert request.headers["content-type"] == "application/json"


async def test_a_failing_endpoint_is_disabled_its_owner_told_and_a_replay_delivers_its_dead(pool, settings):
    world = await make_world(pool)
    clock = Clock()
    async with receivers(lambda r: Answer(status=500), None) as (broken, owner):
        failing = await add_endpoint(pool, world, "webhook", broken.url())
        await add_endpoint(pool, world, "webhook", owner.url(), affiliate=False, event_types=["endpoint.disabled"])
        dispatcher, sender = worker_parts(
            settings, pool, clock, local_policy(broken.port, owner.port), delivery_disable_after_failures=6,
            delivery_disable_after_s=60, delivery_max_age_s=3600)
        await add_events(pool, world, 3)
        for _ in range(10):
            await drain(dispatcher, sender)
            clock.advance(900)
        endpoint = await pool.fetchrow("select * from delivery_endpoints where id = $1", failing)
        assert (endpoint["status"], endpoint["disabled_reason"]) == ("disabled", "failing")
        assert endpoint["failure_streak"] >= 6
        [told] = owner.requests
        assert msgspec.json.decode(told.body)["data"]["endpoint_id"] == str(failing)
        statuses = await pool.fetch("select status, count(*) from deliveries where endpoint_id = $1 group by 1", failing)
        tries = broken.connections
        clock.advance(7200)
        await drain(dispatcher, sender)
        assert broken.connections == tries  # a disabled endpoint gets no requests
        assert sum(r["count"] for r in statuses) == 3

        broken.answer = lambda r: Answer(status=200)  # fixed; the operator re-enables and replays
        async with pool.acquire() as conn:
            await conn.execute("update delivery_endpoints set status = 'active', failure_streak = 0 where id = $1",
                               failing)
            await conn.execute("update deliveries set next_attempt_at = $2 where endpoint_id = $1 and status = 'pending'",
                               failing, clock.now)
        await replay_endpoint(pool, failing, clock.now)
        await drain(dispatcher, sender)
    assert await pool.fetchval(
        "select count(*) from deliveries where endpoint_id = $1 and status = 'delivered'", failing) == 3


async def test_two_senders_never_send_one_delivery_twice(pool, settings):
    world = await make_world(pool)
    clock = Clock()
    async with receivers(None) as (hook,):
        await add_endpoint(pool, world, "webhook", hook.url())
        dispatcher, one = worker_parts(settings, pool, clock, local_policy(hook.port), delivery_batch_max=40)
        _, two = worker_parts(settings, pool, clock, local_policy(hook.port), delivery_batch_max=40)
        events = await add_events(pool, world, 200)
        while await dispatcher.dispatch_once():
            pass
        while sum(await asyncio.gather(one.send_once(), two.send_once())):
            pass
    assert hook.event_ids == {str(e): 1 for e in events}


async def test_dispatching_twice_makes_no_second_delivery(pool, settings):
    world = await make_world(pool)
    clock = Clock()
    await add_endpoint(pool, world, "webhook", "http://hooks.example/")
    dispatcher, _ = worker_parts(settings, pool, clock, local_policy())
    await add_events(pool, world, 5)
    assert await dispatcher.dispatch_once() == 5
    await pool.execute("update outbox_events set dispatched_at = null")  # as if the commit's ack were lost
    assert await dispatcher.dispatch_once() == 5
    assert await pool.fetchval("select count(*) from deliveries") == 5


async def test_an_event_goes_to_the_most_specific_postback_and_to_no_other_affiliate(pool, settings):
    world = await make_world(pool)
    other = await make_world(pool)  # another organization entirely
    clock = Clock()
    await add_endpoint(pool, world, "postback", "http://pb.example/any?c={click_id}")  # less specific: not chosen
    specific = await add_endpoint(pool, world, "postback", "http://pb.example/offer?c={click_id}",
                                  offer_id=uuid.UUID(world.offer_id))
    await add_endpoint(pool, other, "postback", "http://pb.example/other?c={click_id}")
    await add_endpoint(pool, world, "postback", "http://pb.example/goal?c={click_id}",
                       offer_id=uuid.UUID(world.offer_id), goal="deposit")
    dispatcher, _ = worker_parts(settings, pool, clock, local_policy())
    await add_events(pool, world, 1)
    await add_events(pool, world, 1, event_type="cap.reached")  # not a postback event
    await dispatcher.dispatch_once()
    assert [r["endpoint_id"] for r in await pool.fetch("select endpoint_id from deliveries")] == [specific]


async def test_an_endpoint_deleted_while_its_request_is_in_flight_costs_the_others_nothing(pool, settings):
    world = await make_world(pool)
    clock = Clock()
    async with receivers(None, lambda r: Answer(delay_s=0.5)) as (steady, slow):
        await add_endpoint(pool, world, "webhook", steady.url())
        doomed = await add_endpoint(pool, world, "webhook", slow.url())
        dispatcher, sender = worker_parts(settings, pool, clock, local_policy(steady.port, slow.port))
        await add_events(pool, world, 3)
        await dispatcher.dispatch_once()
        sending = asyncio.create_task(sender.send_once())
        async with asyncio.timeout(5):
            while len(slow.requests) < 3:  # its requests are in flight
                await asyncio.sleep(0.01)
        await pool.execute("delete from delivery_endpoints where id = $1", doomed)
        assert await sending == 6
    assert (await _statuses(pool)) == {"delivered": 3}
    assert await pool.fetchval("select count(*) from delivery_attempts") == 3
