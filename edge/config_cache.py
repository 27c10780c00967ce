"""Link configurations in process memory, mirrored from the Redis hash the api writes.

- Start-up and every (re)subscription to the change channel: full reload of the hash
  (subscribe first, then read, so no change falls between the two).
- A change message names tokens: each is re-read (a token gone from the hash is
  dropped); an empty list means reload everything.
- A click for a token not in memory does one HGET (bounded by ``lookup_timeout_s``,
  concurrent misses for one token share it); unknown tokens are remembered for
  ``NEGATIVE_TTL_S`` so a flood of bad tokens does not become a flood of reads.
- A full reload that finds the hash empty while memory is not keeps memory: that is a
  Redis that lost its data (restart without persistence) until the api re-syncs, not
  every link deleted at once.
- Redis down at start-up: the edge serves with what it has and keeps retrying.
The edge never reads Postgres.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import quote

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from core.click_decision import LinkRules, link_rules
from core.errors import ValidationError
from core.macros import CompiledTemplate, validate_url_template
from core.models import LinkConfig, link_config_decoder
from core.redis_keys import RedisKeys

log = logging.getLogger(__name__)

NEGATIVE_TTL_S = 5.0
NEGATIVE_MAX_ENTRIES = 100_000
RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0
_PRINTABLE_ASCII = "".join(chr(c) for c in range(0x21, 0x7F))


class LinkEntry:
    """One link, ready for the hot path."""

    __slots__ = ("config", "rules", "destination", "fallback")

    def __init__(self, config: LinkConfig):
        self.config = config
        self.destination = _compile(config.destination_url, config.token)
        self.fallback = _compile(config.fallback_url, config.token)
        self.rules: LinkRules = link_rules(
            config, has_destination=self.destination is not None, has_fallback=self.fallback is not None,
        )


def _compile(template: str | None, token: str) -> CompiledTemplate | None:
    if not template:
        return None
    try:
        validate_url_template(template)
    except ValidationError as exc:
        log.error("link %s has an unusable URL (%s); it will not be redirected to", token, exc.message)
        return None
    # A Location header is ASCII: keep every printable ASCII character, encode the rest.
    return CompiledTemplate(template if template.isascii() else quote(template, safe=_PRINTABLE_ASCII))


def _decode(token: str, raw: bytes) -> LinkEntry | None:
    try:
        return LinkEntry(link_config_decoder.decode(raw))
    except (msgspec.DecodeError, ValueError, TypeError):
        log.error("undecodable link config for token %s; ignored", token)
        return None


class ConfigCache:
    def __init__(self, redis: aioredis.Redis, keys: RedisKeys, *, lookup_timeout_s: float):
        self.redis = redis
        self.keys = keys
        self.lookup_timeout_s = lookup_timeout_s
        self.entries: dict[str, LinkEntry] = {}
        self.loaded = False
        self.first_attempt_done = asyncio.Event()  # set after the first load, ok or not
        self._unknown_until: dict[str, float] = {}
        self._lookups: dict[str, asyncio.Future] = {}

    async def fetch_missing(self, token: str) -> LinkEntry | None:
        """The entry for a token not in memory, read from Redis once; ``None`` if unknown."""
        if self._unknown_until.get(token, 0.0) > time.monotonic():
            return None
        pending = self._lookups.get(token)
        if pending is None:
            pending = self._lookups[token] = asyncio.ensure_future(self._lookup(token))
            pending.add_done_callback(lambda _: self._lookups.pop(token, None))
        return await asyncio.shield(pending)

    async def _lookup(self, token: str) -> LinkEntry | None:
        try:
            async with asyncio.timeout(self.lookup_timeout_s):
                raw = await self.redis.hget(self.keys.link_configs, token)
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning("config lookup for %s failed: %r", token, exc)
            raw = None
        entry = _decode(token, raw) if raw is not None else None
        if entry is None:
            if len(self._unknown_until) >= NEGATIVE_MAX_ENTRIES:
                self._unknown_until.clear()
            self._unknown_until[token] = time.monotonic() + NEGATIVE_TTL_S
        else:
            self.entries[token] = entry
        return entry

    async def reload_all(self) -> None:
        raw = await self.redis.hgetall(self.keys.link_configs)
        fresh = {}
        for key, value in raw.items():
            token = key.decode() if isinstance(key, bytes) else key
            entry = _decode(token, value)
            if entry is not None:
                fresh[token] = entry
        if not fresh and self.entries:
            log.warning("link config hash is empty; keeping %d cached links until it is re-synced", len(self.entries))
        else:  # in place: the hot path holds a reference to this dict
            self.entries.clear()
            self.entries.update(fresh)
        self._unknown_until.clear()
        self.loaded = True
        self.first_attempt_done.set()
        log.info("loaded %d link configs", len(self.entries))

    async def refresh(self, tokens: list[str]) -> None:
        if not tokens:
            await self.reload_all()
            return
        values = await self.redis.hmget(self.keys.link_configs, tokens)
        for token, raw in zip(tokens, values):
            self._unknown_until.pop(token, None)
            entry = _decode(token, raw) if raw is not None else None
            if entry is None:
                self.entries.pop(token, None)
            else:
                self.entries[token] = entry

    async def follow_changes(self) -> None:
        """Run forever: subscribe, reload, apply change messages; on error, back off and redo."""
        delay_s = RETRY_MIN_S
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.config_changes)
                await self.reload_all()
                delay_s = RETRY_MIN_S
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await self.refresh(_tokens_of(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("config subscription lost (%r); retrying in %.1fs", exc, delay_s)
                self.first_attempt_done.set()
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, RETRY_MAX_S)


_token_list_decoder = msgspec.msgpack.Decoder(list[str])


def _tokens_of(data: bytes) -> list[str]:
    try:
        return _token_list_decoder.decode(data)
    except msgspec.DecodeError:
        log.error("unreadable config change message; reloading everything")
        return []

