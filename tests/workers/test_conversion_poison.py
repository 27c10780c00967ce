"""Conversions stream entries the worker cannot apply: dead-lettered with a reason, the
rest of the batch applied, the worker never stalled by one of them. Also a waiting
postback Postgres refuses once its click gives up."""

from __future__ import annotations

import msgspec
import pytest

from core.models import CONVERSION_BATCH_VERSION, PostbackRecord, postback_batch_decoder
from tests.workers.conversions import (
    Clock, click_of, conversions, make_world, now_ms, postback, push_postbacks, stored_click,
)
from workers.conversion_entries import decode_conversion_entry
from workers.conversion_ingest import ConversionIngest

MIN = 60_000


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_worker(settings, pool, redis, keys, clock):
    tuned = msgspec.structs.replace(settings, conversion_click_wait_s=600, conversion_batch_max_wait_ms=10)

    def build(name: str = "w1") -> ConversionIngest:
        return ConversionIngest(tuned, pool, redis, keys, consumer=name, clock=clock)

    return build


def spoiled(record: PostbackRecord, **fields) -> PostbackRecord:
    return msgspec.structs.replace(record, **fields)


BROKEN = {
    "org id not a UUID": dict(org_id="org-1"),
    "advertiser id not a UUID": dict(advertiser_id=""),
    "ts past year 9999": dict(ts_ms=2 ** 53),
    "negative ts": dict(ts_ms=-1),
    "postback id malformed": dict(postback_id="x"),
    "unknown status": dict(status="paid"),
    "unknown source": dict(source="email"),
}


@pytest.mark.parametrize("fields", BROKEN.values(), ids=BROKEN.keys())
async def test_an_entry_with_a_postback_breaking_the_contract_is_dead_lettered_and_the_rest_applied(
    pool, redis, keys, make_worker, fields,
):
    world = await make_world(pool)
    click = await stored_click(pool, world, now_ms() - MIN)
    bad = spoiled(postback(world, click.click_id, "bad"), **fields)
    await push_postbacks(redis, keys, [postback(world, click.click_id, "with-bad"), bad])
    await push_postbacks(redis, keys, [postback(world, click.click_id, "ok")])
    await make_worker().drain()
    assert [r["external_id"] for r in await conversions(pool)] == ["ok"]
    [(_, dead)] = await redis.xrange(keys.conversion_dead_letters)
    assert dead[b"reason"].startswith(b"postback ")
    assert [r.external_id for r in postback_batch_decoder.decode(dead[b"p"])] == ["with-bad", "bad"]
    assert await redis.xpending(keys.conversion_stream(0), "conversions") == {
        "pending": 0, "min": None, "max": None, "consumers": []}


def test_a_sound_entry_decodes_to_its_postbacks():
    world_ids = dict(org_id="6a3c4f9e-4f52-4b8e-9c1e-0d7f2a1b3c4d", advertiser_id="0b5e8d7c-1a2b-4c3d-8e9f-a0b1c2d3e4f5")
    record = PostbackRecord(postback_id="%012x" % 1 + "0" * 32, ts_ms=1, source="pixel", actor="pixel",
                            click_id=None, external_id="e", status="pending", **world_ids)
    fields = {b"v": CONVERSION_BATCH_VERSION, b"p": msgspec.msgpack.encode([record])}
    assert decode_conversion_entry(fields) == [record]
    assert decode_conversion_entry({**fields, b"v": b"2"}).reason.startswith("unsupported version")
    assert decode_conversion_entry({b"v": CONVERSION_BATCH_VERSION}).reason == "missing field 'p'"
    assert decode_conversion_entry(None).reason == "entry deleted before it was applied"


async def test_a_waiting_postback_postgres_refuses_is_dead_lettered_without_taking_others_with_it(
    pool, redis, keys, make_worker, clock,
):
    world = await make_world(pool)
    missing = click_of(world).click_id
    # a goal longer than conversions allow: nothing refuses it until the conversion is stored
    await push_postbacks(redis, keys, [postback(world, missing, "refused", goal="g" * 101)])
    worker = make_worker()
    await worker.drain()
    assert await pool.fetchval("select count(*) from conversion_waits") == 1

    clock.advance(601)  # it gives up: stored as unknown_click, which Postgres refuses
    click = await stored_click(pool, world, now_ms() - MIN)
    await push_postbacks(redis, keys, [postback(world, click.click_id, f"ok-{n}") for n in range(3)])
    await worker.drain()
    assert sorted(r["external_id"] for r in await conversions(pool)) == ["ok-0", "ok-1", "ok-2"]
    assert await pool.fetchval("select count(*) from conversion_waits") == 0
    [(_, dead)] = await redis.xrange(keys.conversion_dead_letters)
    assert b"rejected by Postgres" in dead[b"reason"]
    assert [r.external_id for r in postback_batch_decoder.decode(dead[b"p"])] == ["refused"]
    assert dead[b"stream"] == b"conversion_waits"
