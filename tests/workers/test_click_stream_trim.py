"""Trimming removes what every group acked and nothing else."""

from __future__ import annotations

from workers.queue_depth import QUEUE_DEPTH, measure_queue_depth
from tests.workers.clicks import make_clicks, pending_count, push, stored_click_ids


async def stream_ids(redis, keys) -> list[str]:
    return [i.decode() for i, _ in await redis.xrange(keys.click_stream(0))]


async def test_acked_entries_are_trimmed(make_consumer, redis, keys):
    for _ in range(5):
        await push(redis, keys, make_clicks(2))

    await make_consumer().drain()

    assert await stream_ids(redis, keys) == []


async def test_entries_another_group_has_not_acked_are_kept(make_consumer, pool, redis, keys):
    stream = keys.click_stream(0)
    ids = [await push(redis, keys, make_clicks(1)) for _ in range(6)]
    await redis.xgroup_create(stream, "audit", id="0", mkstream=True)
    # "audit" read the first four and acked only the first two.
    await redis.xreadgroup("audit", "a1", {stream: ">"}, count=4)
    await redis.xack(stream, "audit", ids[0], ids[1])

    await make_consumer().drain()

    assert len(await stored_click_ids(pool)) == 6
    assert await stream_ids(redis, keys) == ids[2:]  # pending 2..3 and undelivered 4..5 stay

    await redis.xreadgroup("audit", "a1", {stream: ">"})
    await redis.xack(stream, "audit", *ids[2:5])
    await push(redis, keys, make_clicks(1))
    await make_consumer().drain()

    # ids[5] is still pending in "audit"; the new entry is delivered to no audit consumer.
    remaining = await stream_ids(redis, keys)
    assert remaining[0] == ids[5] and len(remaining) == 2


async def test_entries_this_group_has_not_acked_are_kept(make_consumer, redis, keys):
    ids = [await push(redis, keys, make_clicks(1)) for _ in range(3)]
    reader = make_consumer("gone")
    await reader.streams.ensure_groups()
    await reader.streams.read_new(count=1, block_ms=None)  # ids[0]: pending, never acked

    await make_consumer("alive").drain()

    # Trimming cuts a prefix: the pending entry stays, and so does what follows it.
    assert await pending_count(redis, keys) == 1
    assert await stream_ids(redis, keys) == ids
    assert await measure_queue_depth(redis, keys) == {keys.click_stream(0): 3}

    await make_consumer("heir", ingest_reclaim_idle_ms=0).drain()

    assert await pending_count(redis, keys) == 0
    assert await stream_ids(redis, keys) == []
    assert await measure_queue_depth(redis, keys) == {keys.click_stream(0): 0}
    assert QUEUE_DEPTH.labels(stream=keys.click_stream(0))._value.get() == 0
