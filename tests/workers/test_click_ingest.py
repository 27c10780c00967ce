"""The click ingest consumer against real Redis streams and a real Postgres.

Every test counts click ids end to end: each id put on a stream is in Postgres exactly
once, and each stream entry is finally acked.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import pytest

from tests.workers.clicks import (
    dead_letters, make_click, make_clicks, pending_count, push, run_once_dying_before_ack, stored_click_ids,
)
from tests.workers.conftest import StepClock


def assert_exactly_once(stored: list[str], expected) -> None:
    counts = Counter(stored)
    assert set(counts) == {r.click_id for r in expected}
    assert max(counts.values()) == 1


async def test_entries_become_rows_and_are_acked(make_consumer, pool, redis, keys):
    batches = [make_clicks(3), make_clicks(1), make_clicks(5)]
    for batch in batches:
        await push(redis, keys, batch)

    counts = await make_consumer().run_once()

    assert (counts.entries_read, counts.clicks_read, counts.clicks_inserted) == (3, 9, 9)
    assert (counts.clicks_duplicate, counts.entries_dead_lettered) == (0, 0)
    assert_exactly_once(await stored_click_ids(pool), [r for b in batches for r in b])
    assert await pending_count(redis, keys) == 0


async def test_the_same_entries_delivered_twice_give_one_row_each(make_consumer, pool, redis, keys):
    batch = make_clicks(4)
    await push(redis, keys, batch)
    await push(redis, keys, batch)  # e.g. the edge's spool replayed an entry Redis had kept
    consumer = make_consumer()

    counts = await consumer.run_once()
    await push(redis, keys, batch[:2])
    again = await consumer.run_once()

    assert (counts.clicks_read, counts.clicks_inserted, counts.clicks_duplicate) == (8, 4, 4)
    assert (again.clicks_inserted, again.clicks_duplicate) == (0, 2)
    assert_exactly_once(await stored_click_ids(pool), batch)
    assert await pending_count(redis, keys) == 0


async def test_killed_between_commit_and_ack_is_reapplied_without_duplicates(make_consumer, pool, redis, keys):
    batch = make_clicks(6)
    await push(redis, keys, batch[:3])
    await push(redis, keys, batch[3:])
    doomed = make_consumer("doomed")

    await run_once_dying_before_ack(doomed)
    assert_exactly_once(await stored_click_ids(pool), batch)  # committed ...
    assert await pending_count(redis, keys) == 2  # ... but not acked

    survivor = make_consumer("survivor", ingest_reclaim_idle_ms=1)
    await asyncio.sleep(0.005)  # let the entries be idle for more than 1 ms
    counts = await survivor.run_once()

    assert (counts.entries_read, counts.clicks_inserted, counts.clicks_duplicate) == (2, 0, 6)
    assert_exactly_once(await stored_click_ids(pool), batch)
    assert await pending_count(redis, keys) == 0


async def test_a_restarted_consumer_re_reads_its_own_pending_entries_at_once(make_consumer, pool, redis, keys):
    batch = make_clicks(3)
    await push(redis, keys, batch)
    first = make_consumer("worker-1")

    await run_once_dying_before_ack(first)

    # Same name, reclaim idle far away: recovery must not wait for XAUTOCLAIM.
    counts = await make_consumer("worker-1").run_once()

    assert counts.entries_read == 1
    assert_exactly_once(await stored_click_ids(pool), batch)
    assert await pending_count(redis, keys) == 0


async def test_a_dead_consumers_entries_are_reclaimed_only_once_idle(make_consumer, pool, redis, keys):
    batch = make_clicks(10)
    for i in range(0, 10, 2):
        await push(redis, keys, batch[i:i + 2])
    dead = make_consumer("dead")
    await dead.streams.ensure_groups()
    taken = await dead.streams.read_new(count=100, block_ms=None)  # read, then the process vanished
    assert len(taken) == 5

    busy = await make_consumer("patient", ingest_reclaim_idle_ms=60_000).run_once()
    assert busy.entries_read == 0  # not idle long enough: A might still be working on them
    assert await stored_click_ids(pool) == []

    await asyncio.sleep(0.005)
    counts = await make_consumer("heir", ingest_reclaim_idle_ms=1).run_once()

    assert (counts.entries_read, counts.clicks_inserted) == (5, 10)
    assert_exactly_once(await stored_click_ids(pool), batch)
    assert await pending_count(redis, keys) == 0


async def test_reclaim_runs_again_after_its_interval(make_consumer, pool, redis, keys):
    clock = StepClock()
    consumer = make_consumer("heir", clock_ms=clock, ingest_reclaim_idle_ms=1, ingest_reclaim_interval_ms=10_000)
    await consumer.run_once()  # start-up reclaim: nothing yet
    batch = make_clicks(2)
    await push(redis, keys, batch)
    dead = make_consumer("dead")
    await dead.streams.read_new(count=10, block_ms=None)
    await asyncio.sleep(0.005)

    clock.now_ms += 5_000
    before_interval = await consumer.run_once()
    clock.now_ms += 5_001
    after_interval = await consumer.run_once()

    assert before_interval.entries_read == 0
    assert after_interval.clicks_inserted == 2
    assert_exactly_once(await stored_click_ids(pool), batch)


async def test_postgres_unreachable_acks_nothing_and_loses_nothing(make_consumer, pool, redis, keys):
    from afftok.servers import free_port

    batch = make_clicks(7)
    await push(redis, keys, batch[:4])
    await push(redis, keys, batch[4:])
    down = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", min_size=0)
    try:
        consumer = make_consumer("w", pool_=down)
        for _ in range(2):
            with pytest.raises(OSError):
                await consumer.run_once()
    finally:
        await down.close()
    assert await pending_count(redis, keys) == 2
    assert await dead_letters(redis, keys) == []
    assert await redis.xlen(keys.click_stream(0)) == 2

    counts = await make_consumer("w").run_once()  # restarted once Postgres is back

    assert counts.clicks_inserted == 7
    assert_exactly_once(await stored_click_ids(pool), batch)
    assert await pending_count(redis, keys) == 0


async def test_connections_killed_mid_run_are_retried_by_the_same_consumer(make_consumer, pool, redis, keys):
    consumer = make_consumer()
    first = make_clicks(2)
    await push(redis, keys, first)
    await consumer.run_once()  # the pool now holds an open connection
    batch = make_clicks(3)
    await push(redis, keys, batch)
    await pool.fetch("select pg_terminate_backend(pid) from pg_stat_activity"
                     " where datname = current_database() and pid <> pg_backend_pid()")
    # The pool may hand out a connection the server already closed.
    outcomes = []
    for _ in range(3):
        try:
            outcomes.append((await consumer.run_once()).clicks_inserted)
        except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError, asyncpg.AdminShutdownError):
            assert await pending_count(redis, keys) == 1
            outcomes.append("failed")

    assert sum(o for o in outcomes if o != "failed") == 3
    assert_exactly_once(await stored_click_ids(pool), first + batch)
    assert await pending_count(redis, keys) == 0


async def test_run_forever_rides_out_an_outage_and_stops_gracefully(make_consumer, pool, redis, keys):
    from afftok.servers import free_port

    batch = make_clicks(4)
    await push(redis, keys, batch)
    down = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres", min_size=0)
    stop = asyncio.Event()
    outage = make_consumer("w", pool_=down, ingest_retry_max_backoff_ms=20)
    task = asyncio.create_task(outage.run_forever(stop))
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.wait_for(task, 2)
    await down.close()
    assert await pending_count(redis, keys) == 1

    stop = asyncio.Event()
    task = asyncio.create_task(make_consumer("w").run_forever(stop))
    for _ in range(200):
        if len(await stored_click_ids(pool)) == 4:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 2)

    assert_exactly_once(await stored_click_ids(pool), batch)
    assert await pending_count(redis, keys) == 0


async def test_a_batch_closes_at_its_size(make_consumer, redis, keys):
    for _ in range(5):
        await push(redis, keys, make_clicks(4))
    # Time never passes: only the size can end the batch.
    consumer = make_consumer(clock_ms=StepClock(step_ms=0), ingest_batch_max=10, ingest_batch_max_wait_ms=50)

    counts = await consumer.run_once()

    assert counts.clicks_read >= 10
    assert counts.clicks_read < 20
    assert await redis.xlen(keys.click_stream(0)) == 5 - counts.entries_read


async def test_a_batch_closes_at_its_wait(make_consumer, pool, redis, keys):
    batch = make_clicks(3)
    for record in batch:
        await push(redis, keys, [record])
    # Each clock reading moves 40 ms against a 50 ms wait: the batch closes by time
    # after its first read, long before its size (1000) is reached.
    consumer = make_consumer(clock_ms=StepClock(step_ms=40), ingest_batch_max=1000, ingest_batch_max_wait_ms=50)

    first = await consumer.run_once()
    rest = await consumer.drain()

    assert 1 <= first.clicks_read < 3
    assert first.clicks_read + rest.clicks_read == 3
    assert_exactly_once(await stored_click_ids(pool), batch)


async def test_an_empty_stream_returns_after_the_wait_in_real_time(make_consumer):
    consumer = make_consumer(ingest_batch_max_wait_ms=20)
    loop = asyncio.get_running_loop()
    started = loop.time()
    counts = await asyncio.wait_for(consumer.run_once(), 5)
    assert counts.entries_read == 0
    assert loop.time() - started < 2  # BLOCK was bounded, not forever


async def test_clicks_land_in_the_partitions_of_their_days(make_consumer, pool, redis, keys):
    day_ms = 86_400_000
    now_ms = make_click().ts_ms
    old, new = make_click(ts_ms=now_ms - 3 * day_ms), make_click(ts_ms=now_ms + day_ms)
    await push(redis, keys, [old, new])

    await make_consumer().run_once()

    rows = await pool.fetch("select click_id, tableoid::regclass::text as part, clicked_at from clicks")
    parts = {r["click_id"]: r["part"] for r in rows}
    import datetime as dt

    def day_name(ts_ms):
        return "clicks_p" + dt.datetime.fromtimestamp(ts_ms / 1000, dt.timezone.utc).strftime("%Y%m%d")

    assert parts == {old.click_id: day_name(old.ts_ms), new.click_id: day_name(new.ts_ms)}
    assert {r["click_id"]: int(r["clicked_at"].timestamp() * 1000) for r in rows} == {
        old.click_id: old.ts_ms, new.click_id: new.ts_ms}


async def test_sub_ids_round_trip_byte_exact(make_consumer, pool, redis, keys):
    nasty = ["🦄 emoji 💸", "line\r\nbreak", "quote ' and \" both", "back\\slash\\", "tab\there",
             "null-ish \\N", "", "ünïcödé", "a,b;c|d", "\u2028sep"]
    record = make_click(sub1=nasty[0], sub2=nasty[1], sub3=nasty[2], sub4=nasty[3], sub5=nasty[4],
                        source_id=nasty[5], referer=nasty[6], user_agent=nasty[7] + nasty[8] + nasty[9])
    await push(redis, keys, [record])

    await make_consumer().run_once()

    row = await pool.fetchrow("select sub1, sub2, sub3, sub4, sub5, source_id, referer, user_agent"
                              " from clicks where click_id = $1", record.click_id)
    assert list(row.values()) == nasty[:7] + ["".join(nasty[7:])]
    assert [v.encode() for v in row.values()] == [v.encode() for v in nasty[:7] + ["".join(nasty[7:])]]


async def test_a_flushed_redis_is_picked_up_again(make_consumer, pool, redis, keys):
    consumer = make_consumer()
    before = make_clicks(2)
    await push(redis, keys, before)
    await consumer.run_once()
    await redis.delete(keys.click_stream(0))  # Redis lost the stream and its group
    after = make_clicks(3)
    await push(redis, keys, after)  # the edge keeps writing: a new stream, no group

    with pytest.raises(Exception, match="NOGROUP"):
        await consumer.run_once()
    counts = await consumer.run_once()

    assert counts.clicks_inserted == 3  # the group is recreated from the start of the stream
    assert_exactly_once(await stored_click_ids(pool), before + after)


async def test_every_shard_is_consumed(make_consumer, ingest_settings, pool, redis, keys):
    import msgspec

    sharded = msgspec.structs.replace(keys, click_stream_shards=3)
    batches = [make_clicks(2) for _ in range(3)]
    for shard, batch in enumerate(batches):
        await push(redis, sharded, batch, shard=shard)
    from workers.click_ingest import ClickIngest

    consumer = ClickIngest(msgspec.structs.replace(ingest_settings, click_stream_shards=3), pool, redis, sharded,
                           consumer="c")
    await consumer.drain()

    assert_exactly_once(await stored_click_ids(pool), [r for b in batches for r in b])
    for shard in range(3):
        assert await pending_count(redis, sharded, shard=shard) == 0
