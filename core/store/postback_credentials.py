"""Postback credentials: read from Postgres, published to Redis for the edge.

The edge authenticates postbacks from the hash ``keys.postback_auth`` alone (Postgres
being down must not refuse a conversion). Its fields:

- ``adv:<advertiser id>`` -> msgpack ``AdvertiserAuth``: organization, whether the
  advertiser is active, and its signing secrets that verify at the time of publishing
  (the current ones, and those in their rotation grace with ``expires_at_ms``), and the
  organization's ``ip_truncate`` (the pixel truncates the visitor's address by it). The
  secrets are in CLEAR: an HMAC can only be verified with the secret itself, so
  Postgres (under row-level security) and this hash hold them. Guard Redis accordingly.
- ``tok:<sha256 hex of a postback token>`` -> msgpack ``PostbackCredential`` (org,
  advertiser). ``token_field(token)`` computes the field from a presented token.
- ``key:<sha256 hex of an API key>`` -> msgpack ``PostbackCredential`` (org, the key's
  advertiser or None for an organization-wide key, key id, ``expires_at_ms``: the
  earlier of its expiry and its rotation grace, or None) for every usable key whose role
  holds ``conversions:send`` (``core.permissions``). The hash is exactly the one
  ``core.api_keys.hash_key`` stores: SHA-256 over the key's bytes (UTF-8, which is ASCII
  for every well-formed key), in lower-case hex. ``credential_field(raw)`` computes the
  field from a presented key; the edge imports it.

Only entries of active advertisers are published as ``tok:`` and advertiser-scoped
``key:`` fields; an organization-wide key names its advertiser in the postback, and the
edge checks that advertiser's ``adv:`` entry. Entries that stop being valid (a token
replaced, a key revoked, expired or rotated past its grace, a secret revoked or past
its grace) are removed (``HDEL``) when the change is published and at the latest by the
next ``sync_all_postback_auth``; the edge also checks ``expires_at_ms`` itself.

After every change commits, the api calls ``publish_postback_auth`` with a loader of
what it changed (the fields it touched, before and after, and their valid entries): it
writes the entries, removes the other touched fields and announces all of them on
``keys.postback_auth_changes`` (msgpack list of field names). ``sync_all_postback_auth``
rewrites the whole hash from Postgres and announces ``[]`` (reload everything): at api
start-up and every 5 minutes from the maintenance worker.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any, Awaitable, Callable, Iterable, Sequence, TypeVar

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from core.models import AdvertiserAuth, PostbackCredential, SigningSecret
from core.permissions import PERMISSIONS
from core.redis_keys import RedisKeys

SENDING_ROLES = sorted(role for role, actions in PERMISSIONS.items() if "conversions:send" in actions)
_encoder = msgspec.msgpack.Encoder()
_WATCH_ATTEMPTS = 5
R = TypeVar("R")


def advertiser_field(advertiser_id: uuid.UUID | str) -> str:
    return f"adv:{advertiser_id}"


def token_field(token: str) -> str:
    """The field of a presented postback token: ``tok:`` + SHA-256 hex of its UTF-8 bytes."""
    return "tok:" + hashlib.sha256(token.encode()).hexdigest()


def credential_field(raw: str) -> str:
    """The field of a presented API key: ``key:`` + SHA-256 hex of its UTF-8 bytes."""
    return "key:" + hashlib.sha256(raw.encode()).hexdigest()


def _ms(moment: dt.datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


_ADVERTISERS = """
select a.org_id, a.id, a.status = 'active' as active, a.postback_token_hash, o.ip_truncate
from advertisers a join organizations o on o.id = a.org_id
where ($1::uuid is null or a.org_id = $1) and ($2::uuid[] is null or a.id = any($2))
"""
_SECRETS = """
select s.advertiser_id, s.secret, s.expires_at from advertiser_signing_secrets s
where ($1::uuid is null or s.org_id = $1) and ($2::uuid[] is null or s.advertiser_id = any($2))
  and (s.expires_at is null or s.expires_at > coalesce($3::timestamptz, now()))
order by s.expires_at desc nulls first, s.created_at desc
"""
_KEYS = """
select k.id, k.org_id, k.advertiser_id, k.key_hash, least(k.expires_at, k.grace_until) as until
from api_keys k left join advertisers a on a.org_id = k.org_id and a.id = k.advertiser_id
where ($1::uuid is null or k.org_id = $1) and ($2::uuid[] is null or k.id = any($2))
  and k.role = any($4::text[]) and k.revoked_at is null
  and (k.advertiser_id is null or a.status = 'active')
  and coalesce(least(k.expires_at, k.grace_until) > coalesce($3::timestamptz, now()), true)
"""


async def load_postback_auth(
    conn: asyncpg.Connection, *, org_id: uuid.UUID | None = None, advertiser_ids: Sequence[uuid.UUID] | None = None,
    key_ids: Sequence[uuid.UUID] | None = None, now: dt.datetime | None = None,
) -> dict[str, bytes]:
    """The valid entries, encoded, as of ``now`` (default: the database's clock).

    ``org_id`` None: every organization (owner connection). ``advertiser_ids`` and
    ``key_ids`` narrow the advertisers' entries and the keys' entries; naming only one
    kind loads only that kind.
    """
    entries: dict[str, bytes] = {}
    narrowed = advertiser_ids is not None or key_ids is not None
    if advertiser_ids is not None or not narrowed:
        entries.update(await _advertiser_entries(conn, org_id, advertiser_ids, now))
    if key_ids is not None or not narrowed:
        rows = await conn.fetch(_KEYS, org_id, key_ids, now, SENDING_ROLES)
        for r in rows:
            credential = PostbackCredential(
                org_id=str(r["org_id"]), advertiser_id=r["advertiser_id"] and str(r["advertiser_id"]),
                key_id=str(r["id"]), expires_at_ms=_ms(r["until"]),
            )
            entries["key:" + r["key_hash"].hex()] = _encoder.encode(credential)
    return entries


async def _advertiser_entries(
    conn: asyncpg.Connection, org_id: uuid.UUID | None, advertiser_ids: Sequence[uuid.UUID] | None,
    now: dt.datetime | None,
) -> dict[str, bytes]:
    secrets: dict[uuid.UUID, list[SigningSecret]] = {}
    for s in await conn.fetch(_SECRETS, org_id, advertiser_ids, now):
        secrets.setdefault(s["advertiser_id"], []).append(SigningSecret(s["secret"], _ms(s["expires_at"])))
    entries: dict[str, bytes] = {}
    for a in await conn.fetch(_ADVERTISERS, org_id, advertiser_ids):
        org, advertiser = str(a["org_id"]), str(a["id"])
        auth = AdvertiserAuth(org_id=org, advertiser_id=advertiser, active=a["active"],
                              signing_secrets=secrets.get(a["id"], []), ip_truncate=a["ip_truncate"])
        entries[advertiser_field(advertiser)] = _encoder.encode(auth)
        if a["active"] and a["postback_token_hash"] is not None:
            token = PostbackCredential(org_id=org, advertiser_id=advertiser)
            entries["tok:" + a["postback_token_hash"].hex()] = _encoder.encode(token)
    return entries


async def advertiser_fields(conn: asyncpg.Connection, org_id: uuid.UUID, advertiser_id: uuid.UUID) -> set[str]:
    """The fields an advertiser may occupy now (its ``adv:`` and current ``tok:``), valid or not."""
    token_hash = await conn.fetchval(
        "select postback_token_hash from advertisers where org_id = $1 and id = $2", org_id, advertiser_id,
    )
    return {advertiser_field(advertiser_id)} | ({"tok:" + token_hash.hex()} if token_hash else set())


async def key_fields(conn: asyncpg.Connection, org_id: uuid.UUID, key_ids: Iterable[uuid.UUID]) -> set[str]:
    """The fields these keys occupy if valid, whatever their state now (so a revoked one is removed)."""
    rows = await conn.fetch("select key_hash from api_keys where org_id = $1 and id = any($2::uuid[])", org_id, list(key_ids))
    return {"key:" + r["key_hash"].hex() for r in rows}


Loaded = tuple[dict[str, bytes], set[str]]  # (valid entries, every field they replace or remove)


async def publish_postback_auth(
    redis: aioredis.Redis, keys: RedisKeys, load: Callable[[], Awaitable[Loaded]],
) -> list[str]:
    """Write what ``load`` returns, remove its other fields, announce them; return the names.

    ``load`` reads Postgres (after the change committed) and may run more than once: the
    write is made under ``WATCH`` of the hash and retried when anything else wrote it
    meanwhile, so a slower publisher never puts back an entry a later change removed
    (say, a replaced token). Nothing to announce: no message.
    """

    def write(pipe: Pipeline, entries: dict[str, bytes], touched: set[str], present: set[str]) -> list[str]:
        fields = sorted(touched | set(entries))
        gone = [f for f in fields if f not in entries]
        if entries:
            pipe.hset(keys.postback_auth, mapping=entries)
        if gone:
            pipe.hdel(keys.postback_auth, *gone)
        if fields:
            pipe.publish(keys.postback_auth_changes, _encoder.encode(fields))
        return fields

    return await _watched(redis, keys, load, write, need_present=False)


async def sync_all_postback_auth(
    conn: asyncpg.Connection, redis: aioredis.Redis, keys: RedisKeys, *, now: dt.datetime | None = None,
) -> int:
    """Make the hash equal to Postgres for every organization, announce ``[]``; return the entry count.

    Needs a connection that sees every organization (the owner's login). Idempotent;
    made under ``WATCH`` like ``publish_postback_auth``, so it never revives an entry the
    api removed while it was reading.
    """

    async def load() -> Loaded:
        return await load_postback_auth(conn, now=now), set()

    def write(pipe: Pipeline, entries: dict[str, bytes], touched: set[str], present: set[str]) -> int:
        if entries:
            pipe.hset(keys.postback_auth, mapping=entries)
        if stale := present - set(entries):
            pipe.hdel(keys.postback_auth, *stale)
        pipe.publish(keys.postback_auth_changes, _encoder.encode([]))
        return len(entries)

    return await _watched(redis, keys, load, write, need_present=True)


async def _watched(
    redis: aioredis.Redis, keys: RedisKeys, load: Callable[[], Awaitable[Loaded]],
    write: Callable[[Pipeline, dict[str, bytes], set[str], set[str]], R], *, need_present: bool,
) -> R:
    for attempt in range(_WATCH_ATTEMPTS):
        async with redis.pipeline(transaction=True) as pipe:
            last = attempt == _WATCH_ATTEMPTS - 1
            if not last:  # the last attempt writes whatever happened meanwhile: progress over perfection
                await pipe.watch(keys.postback_auth)
            entries, touched = await load()
            reader = redis if last else pipe  # a watching pipeline runs commands at once until multi()
            present = {_text(k) for k in await reader.hkeys(keys.postback_auth)} if need_present else set()
            pipe.multi()
            result = write(pipe, entries, touched, present)
            try:
                await pipe.execute()
            except WatchError:
                continue
            return result
    raise AssertionError("unreachable: the last attempt does not watch")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value
