"""Advertisers' postback credentials in Postgres: the postback token and the signing secrets.

- **Postback token** (``token=`` in GET postback URLs): ``aft_pb_`` and 43 base62
  characters (256 bits from the operating system's CSPRNG). Only its SHA-256
  (``advertisers.postback_token_hash``) and its last four characters are stored, so it is
  returned once, by ``issue_postback_token``. Issuing again replaces it: the old token
  stops working as soon as the edges hear of the change (the caller publishes it).
- **Signing secrets** (``AffTok-Signature: t=,v1=`` HMACs): ``aft_ss_`` and 43 base62
  characters, kept in clear, because an HMAC can only be checked with the secret itself.
  Postgres (under row-level security) and the edge's Redis hash hold them, nothing else;
  answers and audit rows show the last four characters only. A new secret becomes the
  current one; those current until then stay valid for a grace period (default
  ``SIGNING_SECRET_GRACE``, 24 h; at most ``SIGNING_SECRET_GRACE_MAX``), so the
  advertiser can switch without losing postbacks. Revoking ends one at once.

Every function runs in the caller's tenant transaction; another organization's
advertiser or secret is ``NotFound`` exactly like a missing one. The caller publishes
the advertiser's postback auth (``core.store.postback_credentials``) after commit.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

import asyncpg
import msgspec

from core.errors import NotFound, ValidationError

TOKEN_PREFIX = "aft_pb_"
SECRET_PREFIX = "aft_ss_"
RANDOM_LENGTH = 43
SIGNING_SECRET_GRACE = dt.timedelta(hours=24)
SIGNING_SECRET_GRACE_MAX = dt.timedelta(days=30)
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _random(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(RANDOM_LENGTH))


def hash_postback_token(token: str) -> bytes:
    """What ``advertisers.postback_token_hash`` holds: SHA-256 of the token's UTF-8 bytes."""
    return hashlib.sha256(token.encode()).digest()


class IssuedPostbackToken(msgspec.Struct, frozen=True, kw_only=True):
    token: str  # shown once; never stored
    last4: str
    previous_hash: bytes | None  # the token it replaced, to unpublish


class SigningSecretInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A signing secret as it is shown: never the secret, only its last four characters."""

    id: uuid.UUID
    org_id: uuid.UUID
    advertiser_id: uuid.UUID
    last4: str
    created_at: dt.datetime
    expires_at: dt.datetime | None  # None: current; else valid until then (rotation grace or revoked)


class CreatedSigningSecret(msgspec.Struct, frozen=True, kw_only=True):
    secret: str  # shown once
    record: SigningSecretInfo


SECRET_COLUMNS = "id, org_id, advertiser_id, right(secret, 4) as last4, created_at, expires_at"


async def _lock_advertiser(conn: asyncpg.Connection, org_id: uuid.UUID, advertiser_id: uuid.UUID) -> asyncpg.Record:
    """The advertiser's row, locked: concurrent rotations of one advertiser serialize here."""
    row = await conn.fetchrow(
        "select id, postback_token_hash from advertisers where org_id = $1 and id = $2 for update", org_id, advertiser_id,
    )
    if row is None:
        raise NotFound("not_found", "advertiser not found")
    return row


async def issue_postback_token(conn: asyncpg.Connection, org_id: uuid.UUID, advertiser_id: uuid.UUID) -> IssuedPostbackToken:
    """A new postback token for the advertiser, replacing any previous one."""
    async with conn.transaction():
        previous = (await _lock_advertiser(conn, org_id, advertiser_id))["postback_token_hash"]
        token = _random(TOKEN_PREFIX)
        await conn.execute(
            "update advertisers set postback_token_hash = $3, postback_token_last4 = $4 where org_id = $1 and id = $2",
            org_id, advertiser_id, hash_postback_token(token), token[-4:],
        )
    return IssuedPostbackToken(token=token, last4=token[-4:], previous_hash=previous)


async def postback_token_matches(conn: asyncpg.Connection, org_id: uuid.UUID, advertiser_id: uuid.UUID, token: str) -> bool:
    """Whether ``token`` is the advertiser's current postback token."""
    return bool(await conn.fetchval(
        "select postback_token_hash = $3 from advertisers where org_id = $1 and id = $2",
        org_id, advertiser_id, hash_postback_token(token),
    ))


async def create_signing_secret(
    conn: asyncpg.Connection, org_id: uuid.UUID, advertiser_id: uuid.UUID, now: dt.datetime,
    grace: dt.timedelta = SIGNING_SECRET_GRACE,
) -> CreatedSigningSecret:
    """A new current secret; the current ones until now expire at ``now + grace``."""
    if not dt.timedelta(0) <= grace <= SIGNING_SECRET_GRACE_MAX:
        raise ValidationError("invalid_grace_period", "the grace period must be between 0 and 30 days")
    async with conn.transaction():
        await _lock_advertiser(conn, org_id, advertiser_id)
        await conn.execute(
            "update advertiser_signing_secrets set expires_at = $3"
            " where org_id = $1 and advertiser_id = $2 and expires_at is null",
            org_id, advertiser_id, now + grace,
        )
        secret = _random(SECRET_PREFIX)
        row = await conn.fetchrow(
            f"insert into advertiser_signing_secrets (org_id, advertiser_id, secret, created_at)"
            f" values ($1, $2, $3, $4) returning {SECRET_COLUMNS}",
            org_id, advertiser_id, secret, now,
        )
    return CreatedSigningSecret(secret=secret, record=SigningSecretInfo(**dict(row)))


async def list_signing_secrets(
    conn: asyncpg.Connection, org_id: uuid.UUID, advertiser_id: uuid.UUID, now: dt.datetime,
) -> list[SigningSecretInfo]:
    """The secrets that verify signatures at ``now`` (current and in grace), newest first."""
    if not await conn.fetchval("select exists(select from advertisers where org_id = $1 and id = $2)", org_id, advertiser_id):
        raise NotFound("not_found", "advertiser not found")
    rows = await conn.fetch(
        f"select {SECRET_COLUMNS} from advertiser_signing_secrets where org_id = $1 and advertiser_id = $2"
        f" and (expires_at is null or expires_at > $3) order by created_at desc, id desc",
        org_id, advertiser_id, now,
    )
    return [SigningSecretInfo(**dict(r)) for r in rows]


async def get_signing_secret(
    conn: asyncpg.Connection, org_id: uuid.UUID, advertiser_id: uuid.UUID, secret_id: uuid.UUID,
) -> SigningSecretInfo:
    row = await conn.fetchrow(
        f"select {SECRET_COLUMNS} from advertiser_signing_secrets where org_id = $1 and advertiser_id = $2 and id = $3",
        org_id, advertiser_id, secret_id,
    )
    if row is None:
        raise NotFound("not_found", "signing secret not found")
    return SigningSecretInfo(**dict(row))


async def revoke_signing_secret(
    conn: asyncpg.Connection, org_id: uuid.UUID, advertiser_id: uuid.UUID, secret_id: uuid.UUID, now: dt.datetime,
) -> SigningSecretInfo:
    """End a secret at ``now``; one that already ended keeps its end (revoking twice changes nothing)."""
    row = await conn.fetchrow(
        f"update advertiser_signing_secrets set expires_at = least(coalesce(expires_at, $4), $4)"
        f" where org_id = $1 and advertiser_id = $2 and id = $3 returning {SECRET_COLUMNS}",
        org_id, advertiser_id, secret_id, now,
    )
    if row is None:
        raise NotFound("not_found", "signing secret not found")
    return SigningSecretInfo(**dict(row))
