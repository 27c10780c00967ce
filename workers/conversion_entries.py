"""What a conversions stream entry holds, and deciding whether it can be applied.

An entry is one edge group commit: field ``v`` is ``CONVERSION_BATCH_VERSION`` and
field ``p`` is a msgpack list of ``PostbackRecord`` arrays (``core.models``), each
already validated and authenticated by the edge: ``postback_id`` a fresh id of the
click id shape, ``org_id`` and ``advertiser_id`` UUIDs, ``ts_ms`` the instant the edge
accepted it, ``status`` one of ``POSTBACK_STATUSES``, ``source`` ``postback`` or
``pixel``. An entry that breaks any of this is poison: it would fail the same way on
every delivery (or, worse, stop the consumer on a value Python cannot hold), so it is
rejected whole with a reason and dead-lettered.
"""

from __future__ import annotations

import uuid

import msgspec

from core.ids import is_click_id
from core.models import CONVERSION_BATCH_VERSION, POSTBACK_STATUSES, PostbackRecord, postback_batch_decoder
from workers.click_entries import Rejected

SOURCES = ("postback", "pixel")
# Python's datetime ends at year 9999.
_TS_MS_END = 253_402_300_800_000

__all__ = ["Rejected", "decode_conversion_entry", "record_problem"]


def decode_conversion_entry(fields: dict[bytes, bytes] | None) -> list[PostbackRecord] | Rejected:
    """The entry's postbacks, or why it cannot be applied."""
    if fields is None:
        return Rejected("entry deleted before it was applied")
    version = fields.get(b"v")
    if version != CONVERSION_BATCH_VERSION:
        return Rejected(f"unsupported version {version!r}, expected {CONVERSION_BATCH_VERSION!r}")
    payload = fields.get(b"p")
    if payload is None:
        return Rejected("missing field 'p'")
    try:
        records = postback_batch_decoder.decode(payload)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        return Rejected(f"undecodable postbacks: {exc}")
    for record in records:
        problem = record_problem(record)
        if problem:
            return Rejected(f"postback {record.postback_id[:64]!r}: {problem}")
    return records


def record_problem(record: PostbackRecord) -> str | None:
    if not is_click_id(record.postback_id):
        return "malformed postback id"
    if not 0 <= record.ts_ms < _TS_MS_END:
        return f"ts_ms {record.ts_ms} out of range"
    for name in ("org_id", "advertiser_id"):
        try:
            uuid.UUID(getattr(record, name))
        except ValueError:
            return f"{name} is not a UUID"
    if record.status not in POSTBACK_STATUSES:
        return f"status {record.status[:32]!r} is not one of {', '.join(POSTBACK_STATUSES)}"
    if record.source not in SOURCES:
        return f"source {record.source[:32]!r} is not one of {', '.join(SOURCES)}"
    return None
