"""Postbacks waiting for their click (``conversion_waits``), for the conversion worker
(owner role, across organizations), inside its batch transaction.

A postback whose click is not in Postgres yet is parked here with the time of its next
try and the time it gives up (``core.attribution``); the row is durable in the same
transaction that lets its stream entry be acked. Postbacks of one order (dedupe key)
leave in the order they were received (``received_at``, then ``postback_id``): one
waits while an earlier one of its order waits (``earliest_waits``), never behind a
later one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Iterable, Sequence

import asyncpg
import msgspec

from core.attribution import at_ms
from core.models import PostbackRecord, postback_record_decoder
from core.store.conversions import DedupeKey

_record_encoder = msgspec.msgpack.Encoder()

Place = tuple[dt.datetime, str]  # (received_at, postback_id): a postback's place in its order's queue


def place_of(record: PostbackRecord) -> Place:
    return at_ms(record.ts_ms), record.postback_id


class Wait(msgspec.Struct, frozen=True):
    record: PostbackRecord
    next_try_at: dt.datetime
    give_up_at: dt.datetime


async def take_due_waits(conn: asyncpg.Connection, now: dt.datetime, limit: int) -> list[PostbackRecord]:
    """Remove and return up to ``limit`` waits due at ``now`` (oldest postback first);
    rows another consumer has locked are skipped. A rollback puts them back."""
    rows = await conn.fetch(
        "delete from conversion_waits w using ("
        "  select org_id, postback_id from conversion_waits where next_try_at <= $1"
        "  order by received_at, postback_id limit $2 for update skip locked) as due"
        " where w.org_id = due.org_id and w.postback_id = due.postback_id returning w.record, w.received_at,"
        " w.postback_id",
        now, limit,
    )
    rows = sorted(rows, key=lambda r: (r["received_at"], r["postback_id"]))
    return [postback_record_decoder.decode(r["record"]) for r in rows]


async def earliest_waits(conn: asyncpg.Connection, keys: Iterable[DedupeKey]) -> dict[DedupeKey, Place]:
    """For each of ``keys`` with a postback still waiting (other than those taken by this
    transaction), the place of the earliest one."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    rows = await conn.fetch(
        "select distinct on (org_id, advertiser_id, external_id, goal_key)"
        " org_id, advertiser_id, external_id, goal_key, received_at, postback_id from conversion_waits"
        " where (org_id, advertiser_id, external_id, goal_key) in"
        " (select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]))"
        " order by org_id, advertiser_id, external_id, goal_key, received_at, postback_id",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys],
    )
    return {(r[0], r[1], r[2], r[3]): (r["received_at"], r["postback_id"]) for r in rows}


async def insert_waits(conn: asyncpg.Connection, waits: Sequence[Wait]) -> None:
    if waits:
        await conn.executemany(
            "insert into conversion_waits (org_id, postback_id, advertiser_id, external_id, goal_key, click_id,"
            " record, received_at, next_try_at, give_up_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " on conflict (org_id, postback_id) do nothing",
            [(uuid.UUID(w.record.org_id), w.record.postback_id, uuid.UUID(w.record.advertiser_id),
              w.record.external_id, w.record.goal or "", w.record.click_id, _record_encoder.encode(w.record),
              at_ms(w.record.ts_ms), w.next_try_at, w.give_up_at) for w in waits],
        )
