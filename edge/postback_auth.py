"""Who may send conversions, held in memory at the edge.

The api publishes the Redis hash ``keys.postback_auth`` (``core.store.postback_credentials``):
``adv:<advertiser id>`` → ``AdvertiserAuth`` (organization, active, signing secrets),
``tok:<sha256 hex of a postback token>`` and ``key:<sha256 hex of an API key>`` →
``PostbackCredential``. The edge loads the whole hash at start and re-reads the fields a
change message on ``keys.postback_auth_changes`` names (an empty list: everything),
the same way ``edge.config_cache`` follows link configs. A postback is never
authenticated from Redis on the request path: an unknown credential is refused at once.
A full reload that finds the hash empty while memory is not keeps memory: that is a
Redis that lost its data until the api re-syncs it (at its start and every 5 minutes),
and refusing every advertiser meanwhile would lose their conversions (few retry a 401).

``authenticate`` answers who sent a postback, or raises ``Unauthorized``:

- ``token=`` (query): its hash names the advertiser → actor ``postback:token``;
- ``AffTok-Signature: t=<unix>,v1=<hex>`` over ``"<t>.<raw body>"`` (``core.signatures``,
  ±300 s): tried against every current or not yet expired secret of the advertiser the
  request names (``advertiser_id``) → actor ``postback:signature``. The signature covers
  the body only, so a signed request may carry no field outside it (``unsigned_fields``:
  the query's names) but ``advertiser_id``, which only picks the secret; otherwise a
  captured request, or any signed GET (its body is empty), could be replayed within the
  window with other values;
- an API key (``Authorization: Bearer`` or ``X-Api-Key``) allowed to send conversions:
  an advertiser-scoped key names its advertiser, an organization-wide one needs
  ``advertiser_id`` of its own organization → actor ``api_key:<key id>``.

Every refusal looks the same to the sender (401 ``unauthorized``); the reason is logged.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable

import msgspec
import redis.asyncio as aioredis

from core.errors import Unauthorized
from core.postbacks import credential_field
from core.models import AdvertiserAuth, PostbackCredential, advertiser_auth_decoder, postback_credential_decoder
from core.redis_keys import RedisKeys
from core.signatures import verify

log = logging.getLogger(__name__)

RETRY_MIN_S, RETRY_MAX_S = 0.5, 10.0


class Sender(msgspec.Struct, frozen=True):
    org_id: str
    advertiser_id: str
    actor: str
    ip_truncate: bool = False  # the organization stores addresses truncated


def _decode(field: str, raw: bytes):
    try:
        if field.startswith("adv:"):
            return advertiser_auth_decoder.decode(raw)
        if field.startswith(("tok:", "key:")):
            return postback_credential_decoder.decode(raw)
    except msgspec.DecodeError:
        log.error("unreadable postback auth entry %s; ignored", field)
    return None


class PostbackAuthCache:
    def __init__(self, redis: aioredis.Redis, keys: RedisKeys):
        self.redis = redis
        self.keys = keys
        self.entries: dict[str, AdvertiserAuth | PostbackCredential] = {}
        self.loaded = False
        self.first_attempt_done = asyncio.Event()  # set after the first load, ok or not

    async def reload_all(self) -> None:
        raw = await self.redis.hgetall(self.keys.postback_auth)
        fresh = {}
        for key, value in raw.items():
            field = key.decode() if isinstance(key, bytes) else key
            entry = _decode(field, value)
            if entry is not None:
                fresh[field] = entry
        if not fresh and self.entries:
            log.warning("postback auth hash is empty; keeping %d cached entries until it is re-synced", len(self.entries))
        else:
            self.entries.clear()
            self.entries.update(fresh)
        self.loaded = True
        self.first_attempt_done.set()
        log.info("loaded %d postback credentials and advertisers", len(self.entries))

    async def refresh(self, fields: list[str]) -> None:
        if not fields:
            await self.reload_all()
            return
        for field, raw in zip(fields, await self.redis.hmget(self.keys.postback_auth, fields)):
            entry = _decode(field, raw) if raw is not None else None
            if entry is None:
                self.entries.pop(field, None)
            else:
                self.entries[field] = entry

    async def follow_changes(self) -> None:
        """Run forever: subscribe, reload, apply change messages; on error, back off and redo."""
        delay_s = RETRY_MIN_S
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.keys.postback_auth_changes)
                await self.reload_all()
                delay_s = RETRY_MIN_S
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await self.refresh(_fields_of(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("postback auth subscription lost (%r); retrying in %.1fs", exc, delay_s)
                self.first_attempt_done.set()
            finally:
                try:
                    await pubsub.aclose()
                except Exception:
                    pass
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, RETRY_MAX_S)

    def advertiser(self, advertiser_id: str | None) -> AdvertiserAuth | None:
        """The active advertiser ``advertiser_id`` names (any spelling of its UUID), or None."""
        advertiser_id = canonical_uuid(advertiser_id)
        entry = self.entries.get(f"adv:{advertiser_id}") if advertiser_id else None
        return entry if isinstance(entry, AdvertiserAuth) and entry.active else None

    def authenticate(
        self, *, token: str | None, signature: str | None, api_key: str | None, advertiser_id: str | None,
        body: bytes, now_ms: int, unsigned_fields: Iterable[str] = (),
    ) -> Sender:
        advertiser_id = canonical_uuid(advertiser_id)
        if token:
            credential = self._credential(credential_field("tok", token), now_ms)
            return self._sender(credential, advertiser_id, "postback:token")
        if signature:
            unsigned = sorted(set(unsigned_fields) - {"advertiser_id"})
            if unsigned:
                raise Unauthorized("unauthorized", f"a signed postback sends its fields in the body, not {unsigned}")
            advertiser = self.advertiser(advertiser_id)
            if advertiser is None:
                raise Unauthorized("unauthorized", "a signed postback must name a known advertiser_id")
            secrets = [s.secret for s in advertiser.signing_secrets if s.expires_at_ms is None or s.expires_at_ms > now_ms]
            last: Unauthorized = Unauthorized("unauthorized", "the advertiser has no signing secret")
            for secret in secrets:
                try:
                    verify(secret.encode(), signature, body, now_ms // 1000)
                    return Sender(advertiser.org_id, advertiser.advertiser_id, "postback:signature", advertiser.ip_truncate)
                except Unauthorized as exc:
                    last = exc
            raise last
        if api_key:
            credential = self._credential(credential_field("key", api_key), now_ms)
            return self._sender(credential, advertiser_id, f"api_key:{credential.key_id}")
        raise Unauthorized("unauthorized", "no postback token, signature or API key")

    def _credential(self, field: str, now_ms: int) -> PostbackCredential:
        credential = self.entries.get(field)
        if not isinstance(credential, PostbackCredential):
            raise Unauthorized("unauthorized", "unknown postback credential")
        if credential.expires_at_ms is not None and credential.expires_at_ms <= now_ms:
            raise Unauthorized("unauthorized", "expired postback credential")
        return credential

    def _sender(self, credential: PostbackCredential, advertiser_id: str | None, actor: str) -> Sender:
        named = credential.advertiser_id or advertiser_id
        if credential.advertiser_id and advertiser_id and advertiser_id != credential.advertiser_id:
            raise Unauthorized("unauthorized", "the credential belongs to another advertiser")
        advertiser = self.advertiser(named)
        if advertiser is None or advertiser.org_id != credential.org_id:
            raise Unauthorized("unauthorized", "unknown or inactive advertiser")
        return Sender(credential.org_id, advertiser.advertiser_id, actor, advertiser.ip_truncate)


def canonical_uuid(value: str | None) -> str | None:
    """``value`` as the api writes UUIDs (lower case, hyphenated), None if it is none."""
    if not value:
        return None
    try:
        return str(uuid.UUID(value))
    except (ValueError, TypeError):
        return None


_field_list_decoder = msgspec.msgpack.Decoder(list[str])


def _fields_of(data: bytes) -> list[str]:
    try:
        return _field_list_decoder.decode(data)
    except msgspec.DecodeError:
        log.error("unreadable postback auth change message; reloading everything")
        return []
