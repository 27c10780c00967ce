"""Postbacks whose click is not (yet) in Postgres: which wait, which are unknown at once,
and that postbacks of one order leave their waits in the order they were received."""

from __future__ import annotations

import msgspec
import pytest

from tests.workers.clicks import push
from tests.workers.conversions import (
    Clock, click_of, conversions, history, make_world, now_ms, postback, push_postbacks,
)
from workers.conversion_ingest import ConversionIngest

DAY_MS = 86_400_000


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_worker(settings, pool, redis, keys, clock):
    tuned = msgspec.structs.replace(settings, conversion_click_wait_s=600, conversion_wait_retry_ms=1000,
                                    conversion_batch_max_wait_ms=10, ingest_reclaim_idle_ms=60_000)

    def build(name: str = "w1") -> ConversionIngest:
        return ConversionIngest(tuned, pool, redis, keys, consumer=name, clock=clock)

    return build


async def waits(pool) -> int:
    return await pool.fetchval("select count(*) from conversion_waits")


async def test_two_postbacks_of_one_order_waiting_for_the_click_are_applied_in_order(
    pool, redis, keys, make_worker, make_consumer, clock,
):
    world = await make_world(pool)
    click = click_of(world)
    worker = make_worker()
    await push_postbacks(redis, keys, [postback(world, click.click_id, "o-1", status="pending")])
    await worker.drain()
    clock.advance(0.6)
    await push_postbacks(redis, keys, [postback(world, click.click_id, "o-1", status="approved")])
    await worker.drain()
    assert (await conversions(pool), await waits(pool)) == ([], 2)  # the second waits behind the first

    await push(redis, keys, [click])
    await make_consumer().drain()
    for _ in range(4):  # the first is due before the second: it must not wait behind it
        clock.advance(0.5)
        await worker.drain()
    [row] = await conversions(pool)
    assert row["status"] == "approved"
    assert [(h["from_status"], h["to_status"]) for h in await history(pool, row["id"])] == [
        (None, "pending"), ("pending", "approved")]
    assert await waits(pool) == 0


async def test_a_later_postback_of_a_waiting_order_gives_up_with_it(pool, redis, keys, make_worker, clock):
    world = await make_world(pool)
    missing = click_of(world).click_id
    worker = make_worker()
    await push_postbacks(redis, keys, [postback(world, missing, "o-2", status="pending")])
    await worker.drain()
    clock.advance(0.3)
    await push_postbacks(redis, keys, [postback(world, missing, "o-2", status="approved")])
    await worker.drain()
    clock.advance(700)
    await worker.drain()
    [row] = await conversions(pool)
    assert (row["status"], row["reason"]) == ("rejected", "unknown_click")
    assert await waits(pool) == 0
    assert len(await history(pool, row["id"])) == 1  # the approval of a rejected one changes nothing


@pytest.mark.parametrize("click_id", [
    "f" * 44,  # our shape, but its instant is past year 9999
    "%012x" % (now_ms() + 30 * DAY_MS) + "0" * 32,  # a month after the postback: not a click of ours
    "%012x" % (now_ms() - 800 * DAY_MS) + "0" * 32,  # older than any organization keeps clicks
    "%012x" % (now_ms() - 100 * DAY_MS) + "0" * 32,  # older than this organization keeps them (90 days)
])
async def test_a_click_id_that_cannot_be_in_postgres_is_unknown_at_once(pool, redis, keys, make_worker, click_id):
    world = await make_world(pool)
    await push_postbacks(redis, keys, [postback(world, click_id, "x"), postback(world, None, "no-click")])
    await make_worker().drain()
    rows = {r["external_id"]: r for r in await conversions(pool)}
    assert (rows["x"]["status"], rows["x"]["reason"], rows["x"]["click_id"]) == ("rejected", "unknown_click", click_id)
    assert (rows["no-click"]["status"], rows["no-click"]["reason"]) == ("rejected", "unknown_click")
    assert await waits(pool) == 0


async def test_a_recent_click_id_not_in_postgres_waits(pool, redis, keys, make_worker):
    world = await make_world(pool)
    await push_postbacks(redis, keys, [postback(world, "%012x" % (now_ms() - 20 * DAY_MS) + "0" * 32, "x")])
    await make_worker().drain()
    assert (await conversions(pool), await waits(pool)) == ([], 1)
