"""Poison entries go to the dead-letter stream with a reason; the rest is written."""

from __future__ import annotations

from collections import Counter

from core.ids import new_click_id
from core.models import click_batch_encoder
from tests.workers.clicks import (
    dead_letters, entry_fields, garbage, make_click, make_clicks, pending_count, push, push_raw,
    stored_click_ids,
)


async def test_poison_entries_are_dead_lettered_and_good_ones_written(make_consumer, pool, redis, keys):
    good_before, good_after = make_clicks(3), make_clicks(2)
    stray = make_click()
    poison = {
        "wrong version": {b"v": b"2", b"c": entry_fields(make_clicks(1))[b"c"]},
        "no version": {b"c": entry_fields(make_clicks(1))[b"c"]},
        "garbage": {b"v": b"1", b"c": b"\xc1\xff not msgpack"},
        "schema": {b"v": b"1", b"c": garbage()},
        "missing c": {b"v": b"1"},
        "ts mismatch": entry_fields([make_click(), make_click(ts_ms=stray.ts_ms - 5, click_id=stray.click_id)]),
        "bad click id": entry_fields([make_click(click_id="not-a-click-id")]),
        "bad inet": entry_fields([make_click(), make_click(ip="not-an-ip")]),
        "bad uuid": entry_fields([make_click(org_id="not-a-uuid")]),
        "long country": entry_fields([make_click(country="DEU")]),
        "nul byte": entry_fields([make_click(sub1="a\x00b")]),
    }
    await push(redis, keys, good_before)
    ids = {name: await push_raw(redis, keys, fields) for name, fields in poison.items()}
    await push(redis, keys, good_after)

    counts = await make_consumer().drain()

    assert Counter(await stored_click_ids(pool)) == Counter(r.click_id for r in good_before + good_after)
    assert counts.entries_dead_lettered == len(poison)
    assert await pending_count(redis, keys) == 0
    letters = {f[b"id"].decode(): f for f in await dead_letters(redis, keys)}
    assert set(letters) == set(ids.values())
    reasons = {name: letters[ids[name]][b"reason"].decode() for name in poison}
    assert "version" in reasons["wrong version"] and "version" in reasons["no version"]
    assert "undecodable" in reasons["garbage"] and "undecodable" in reasons["schema"]
    assert "missing field 'c'" in reasons["missing c"]
    assert "ts_ms differs" in reasons["ts mismatch"]
    assert "malformed click id" in reasons["bad click id"]
    assert "inet" in reasons["bad inet"] and "uuid" in reasons["bad uuid"]
    assert "rejected by Postgres" in reasons["long country"] and "rejected by Postgres" in reasons["nul byte"]
    for name, fields in poison.items():  # the original entry survives for a replay
        letter = letters[ids[name]]
        assert letter[b"stream"].decode() == keys.click_stream(0)
        assert {k: v for k, v in letter.items() if k not in (b"stream", b"id", b"reason")} == fields


async def test_a_batch_with_one_bad_record_still_writes_the_other_entries(make_consumer, pool, redis, keys):
    batches = [make_clicks(2) for _ in range(4)]
    bad = [make_click(), make_click(ip="999.1.1.1")]
    await push(redis, keys, batches[0])
    await push(redis, keys, batches[1])
    await push(redis, keys, bad)
    await push(redis, keys, batches[2])
    await push(redis, keys, batches[3])

    counts = await make_consumer().run_once()  # one batch: Postgres rejects it, entry by entry follows

    assert counts.entries_read == 5
    assert (counts.clicks_inserted, counts.entries_dead_lettered) == (8, 1)
    assert Counter(await stored_click_ids(pool)) == Counter(r.click_id for b in batches for r in b)
    [letter] = await dead_letters(redis, keys)
    assert letter[b"c"] == click_batch_encoder.encode(bad)
    assert await pending_count(redis, keys) == 0


async def test_original_fields_named_like_ours_are_kept_aside(make_consumer, redis, keys):
    entry_id = await push_raw(redis, keys, {b"v": b"9", b"reason": b"mine", b"id": new_click_id(0)})

    await make_consumer().run_once()

    [letter] = await dead_letters(redis, keys)
    assert letter[b"id"].decode() == entry_id
    assert letter[b"original:reason"] == b"mine"
    assert letter[b"reason"].startswith(b"unsupported version")


async def test_a_pending_entry_deleted_from_the_stream_is_recorded_and_released(make_consumer, pool, redis, keys):
    lost = await push(redis, keys, make_clicks(1))
    kept = make_clicks(2)
    await push(redis, keys, kept)
    crashed = make_consumer("w")
    await crashed.streams.ensure_groups()
    await crashed.streams.read_new(10, None)
    await redis.xdel(keys.click_stream(0), lost)  # someone deleted it by hand

    counts = await make_consumer("w").drain()  # the restart re-reads its pending entries

    assert counts.entries_dead_lettered == 1
    [letter] = await dead_letters(redis, keys)
    assert letter[b"id"].decode() == lost and b"deleted" in letter[b"reason"]
    assert Counter(await stored_click_ids(pool)) == Counter(r.click_id for r in kept)
    assert await pending_count(redis, keys) == 0
