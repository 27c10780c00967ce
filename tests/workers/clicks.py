"""Building clicks and putting them on the stream exactly as the edge does."""

from __future__ import annotations

import time
import uuid

import msgspec

from core.ids import new_click_id
from core.models import CLICK_BATCH_VERSION, ClickRecord, click_batch_encoder
from core.redis_keys import RedisKeys


def make_click(ts_ms: int | None = None, **fields) -> ClickRecord:
    ts_ms = int(time.time() * 1000) if ts_ms is None else ts_ms
    values = dict(
        click_id=new_click_id(ts_ms), ts_ms=ts_ms, org_id=str(uuid.uuid4()), offer_id=str(uuid.uuid4()),
        affiliate_id=str(uuid.uuid4()), link_id=str(uuid.uuid4()), outcome="redirect",
        sub1="s1", ip="203.0.113.7", user_agent="Mozilla/5.0", country="DE", device_type="desktop",
    )
    values.update(fields)
    return ClickRecord(**values)


def make_clicks(count: int) -> list[ClickRecord]:
    return [make_click() for _ in range(count)]


def entry_fields(records: list[ClickRecord]) -> dict[bytes, bytes]:
    return {b"v": CLICK_BATCH_VERSION, b"c": click_batch_encoder.encode(records)}


async def push(redis, keys: RedisKeys, records: list[ClickRecord], shard: int = 0) -> str:
    entry_id = await redis.xadd(keys.click_stream(shard), entry_fields(records))
    return entry_id.decode()


async def push_raw(redis, keys: RedisKeys, fields: dict, shard: int = 0) -> str:
    return (await redis.xadd(keys.click_stream(shard), fields)).decode()


async def stored_click_ids(pool) -> list[str]:
    return [r["click_id"] for r in await pool.fetch("select click_id from clicks")]


async def pending_count(redis, keys: RedisKeys, group: str = "ingest", shard: int = 0) -> int:
    return (await redis.xpending(keys.click_stream(shard), group))["pending"]


async def dead_letters(redis, keys: RedisKeys) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in await redis.xrange(keys.click_dead_letters)]


def garbage() -> bytes:
    return msgspec.msgpack.encode({"not": "a list of clicks"})


class Killed(BaseException):
    """The process dying: nothing after the raise runs."""


async def run_once_dying_before_ack(consumer) -> None:
    """One cycle of ``consumer`` that commits and then dies before it acks."""

    async def die(entries):
        raise Killed()

    consumer.streams.ack = die
    try:
        await consumer.run_once()
    except Killed:
        return
    raise AssertionError("the consumer reached its ack without applying anything")
