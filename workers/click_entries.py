"""What a click stream entry holds, and deciding whether it can be applied.

An entry is one edge group commit: field ``v`` is ``CLICK_BATCH_VERSION`` and field
``c`` is a msgpack list of ``ClickRecord`` arrays. Each record's ``click_id`` is a
well-formed click id whose time prefix equals ``ts_ms`` (that is what makes a
redelivered click land on its first copy). An entry that breaks any of this is poison:
it fails the same way on every delivery, so it is rejected whole with a reason.
"""

from __future__ import annotations

import msgspec

from core.ids import click_id_time_ms, is_click_id
from core.models import CLICK_BATCH_VERSION, ClickRecord, click_batch_decoder

# Python's datetime (partition naming) ends at year 9999.
_TS_MS_END = 253_402_300_800_000


class Rejected(msgspec.Struct, frozen=True):
    reason: str


def decode_click_entry(fields: dict[bytes, bytes] | None) -> list[ClickRecord] | Rejected:
    """The entry's records, or why it cannot be applied."""
    if fields is None:
        return Rejected("entry deleted before it was applied")
    version = fields.get(b"v")
    if version != CLICK_BATCH_VERSION:
        return Rejected(f"unsupported version {version!r}, expected {CLICK_BATCH_VERSION!r}")
    payload = fields.get(b"c")
    if payload is None:
        return Rejected("missing field 'c'")
    try:
        records = click_batch_decoder.decode(payload)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        return Rejected(f"undecodable clicks: {exc}")
    for record in records:
        problem = record_problem(record)
        if problem:
            return Rejected(f"click {record.click_id[:64]!r}: {problem}")
    return records


def record_problem(record: ClickRecord) -> str | None:
    if not is_click_id(record.click_id):
        return "malformed click id"
    if not 0 <= record.ts_ms < _TS_MS_END:
        return f"ts_ms {record.ts_ms} out of range"
    if click_id_time_ms(record.click_id) != record.ts_ms:
        return "ts_ms differs from the click id's time"
    return None


def entry_click_count(fields: dict[bytes, bytes] | None, field: bytes = b"c") -> int:
    """Records in an entry without decoding it: the msgpack array header holds the count
    (``field`` ``c`` for clicks, ``p`` for postbacks)."""
    payload = (fields or {}).get(field, b"")
    if not payload:
        return 0
    head = payload[0]
    if head & 0xF0 == 0x90:  # fixarray
        return head & 0x0F
    if head == 0xDC and len(payload) >= 3:  # array 16
        return int.from_bytes(payload[1:3], "big")
    if head == 0xDD and len(payload) >= 5:  # array 32
        return int.from_bytes(payload[1:5], "big")
    return 1  # not an array: poison, counted as one so batching still moves on
