"""Sharded streams (clicks, or conversions) seen from one consumer of one consumer group.

Everything here is a thin, named wrapper over a Redis stream command; what to do with
the entries is ``workers.click_ingest``'s business. Entry ids are ``"<ms>-<seq>"``
strings, stream names are ``str``, field names and values stay ``bytes``.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from core.redis_keys import RedisKeys

_DEAD_LETTER_FIELDS = (b"stream", b"id", b"reason")
_REASON_MAX_CHARS = 1000


class StreamEntry(msgspec.Struct, frozen=True):
    stream: str
    entry_id: str
    # None when the entry was deleted from the stream while still pending.
    fields: dict[bytes, bytes] | None


def entry_id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def next_entry_id(entry_id: str) -> str:
    ms, seq = entry_id_key(entry_id)
    return f"{ms}-{seq + 1}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _entries(stream: bytes | str, raw: Iterable) -> list[StreamEntry]:
    return [StreamEntry(_text(stream), _text(entry_id), fields or None) for entry_id, fields in raw if entry_id]


class ClickStreams:
    def __init__(
        self, redis: aioredis.Redis, keys: RedisKeys, group: str, consumer: str, *,
        names: list[str] | None = None, dead_letters: str | None = None,
    ):
        """The click streams by default; ``names`` and ``dead_letters`` for another kind."""
        self.redis = redis
        self.keys = keys
        self.group = group
        self.consumer = consumer
        self.names = names or keys.click_streams()
        self.dead_letters = dead_letters or keys.click_dead_letters

    async def ensure_groups(self) -> None:
        """Create the group on every shard (and the shard itself), reading from the start."""
        for stream in self.names:
            try:
                await self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read_new(self, count: int, block_ms: int | None) -> list[StreamEntry]:
        """Entries never delivered to the group; waits up to ``block_ms`` (never forever)."""
        block = block_ms if block_ms and block_ms > 0 else None
        reply = await self.redis.xreadgroup(
            self.group, self.consumer, {s: ">" for s in self.names}, count=count, block=block
        )
        return [e for stream, raw in reply or [] for e in _entries(stream, raw)]

    async def read_own_pending(self, count: int, after: dict[str, str] | None = None) -> list[StreamEntry]:
        """Entries delivered to this consumer name and not acked (a restart's leftovers),
        per stream from just after ``after[stream]`` (default: the start)."""
        after = after or {}
        reply = await self.redis.xreadgroup(
            self.group, self.consumer, {s: after.get(s, "0") for s in self.names}, count=count
        )
        return [e for stream, raw in reply or [] for e in _entries(stream, raw)]

    async def reclaim(self, min_idle_ms: int, count: int) -> list[StreamEntry]:
        """Take over entries pending on any consumer for at least ``min_idle_ms``."""
        claimed: list[StreamEntry] = []
        for stream in self.names:
            start = "0-0"
            while len(claimed) < count:
                reply = await self.redis.xautoclaim(
                    stream, self.group, self.consumer, min_idle_ms, start_id=start, count=count - len(claimed)
                )
                claimed.extend(_entries(stream, reply[1]))
                start = _text(reply[0])
                if start == "0-0":
                    break
        return claimed

    async def ack(self, entries: Sequence[StreamEntry]) -> None:
        by_stream: dict[str, list[str]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry.entry_id)
        if not by_stream:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in by_stream.items():
                pipe.xack(stream, self.group, *ids)
            await pipe.execute()

    async def dead_letter(self, rejected: Sequence[tuple[StreamEntry, str]]) -> None:
        """Copy each entry with its reason to the dead-letter stream and ack it, atomically."""
        if not rejected:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            for entry, reason in rejected:
                pipe.xadd(self.dead_letters, dead_letter_fields(entry, reason))
                pipe.xack(entry.stream, self.group, entry.entry_id)
            await pipe.execute()

    async def trim_acknowledged(self) -> None:
        """Drop the entries every group has acked, and only those."""
        for stream in self.names:
            threshold = await self._oldest_needed(stream)
            if threshold is not None:
                await self.redis.xtrim(stream, minid=threshold, approximate=False)

    async def _oldest_needed(self, stream: str) -> str | None:
        # Order matters: groups first, then pending. An entry at or below a group's
        # last-delivered id that is pending at trim time was already pending when
        # XINFO ran, so XPENDING (run after) still sees it; later deliveries are all
        # above the last-delivered id we read.
        candidates: list[str] = []
        for info in await self.redis.xinfo_groups(stream):
            candidates.append(next_entry_id(_text(info["last-delivered-id"])))
            if info["pending"]:
                summary = await self.redis.xpending(stream, _text(info["name"]))
                if summary["min"] is not None:
                    candidates.append(_text(summary["min"]))
        return min(candidates, key=entry_id_key) if candidates else None


def dead_letter_fields(entry: StreamEntry, reason: str) -> dict[bytes, bytes]:
    """The dead-letter entry: where it came from, why, and the original fields.

    An original field that would shadow one of ours is kept as ``original:<name>``.
    """
    fields: dict[bytes, bytes] = {}
    for name, value in (entry.fields or {}).items():
        fields[b"original:" + name if name in _DEAD_LETTER_FIELDS else name] = value
    fields[b"stream"] = entry.stream.encode()
    fields[b"id"] = entry.entry_id.encode()
    fields[b"reason"] = reason[:_REASON_MAX_CHARS].encode()
    return fields
