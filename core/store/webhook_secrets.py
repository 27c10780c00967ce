"""Webhooks' signing secrets in Postgres (``delivery_endpoint_secrets``).

The model of advertisers' signing secrets (``core.store.postback_secrets``), turned
around: here AffTok signs and the receiver verifies.

- A secret is ``aft_whsec_`` and 43 base62 characters (256 bits from the operating
  system's CSPRNG), kept in clear, because an HMAC needs the secret itself. Postgres
  (under row-level security) holds it, nothing else; answers and audit rows show the
  last four characters only, and the secret itself is in one response, its creation's.
- A webhook gets its first secret when it is made. Rotating makes a new current one
  and gives the secrets current until then ``expires_at = now + grace`` (default
  ``WEBHOOK_SECRET_GRACE``, 24 h; at most ``WEBHOOK_SECRET_GRACE_MAX``). The worker
  signs with every live secret (``t=…,v1=<new>,v1=<old>``), so the receiver can switch
  to the new one at any time within the grace without failing a request.

Every function runs in the caller's tenant transaction; another organization's webhook,
another affiliate's, or (for an affiliate) the organization's own, is ``NotFound``
exactly like a missing one.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

import asyncpg
import msgspec

from core.errors import NotFound, ValidationError

SECRET_PREFIX = "aft_whsec_"
RANDOM_LENGTH = 43
WEBHOOK_SECRET_GRACE = dt.timedelta(hours=24)
WEBHOOK_SECRET_GRACE_MAX = dt.timedelta(days=30)
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class WebhookSecretInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A signing secret as it is shown: never the secret, only its last four characters."""

    id: uuid.UUID
    org_id: uuid.UUID
    endpoint_id: uuid.UUID
    last4: str
    created_at: dt.datetime
    expires_at: dt.datetime | None  # None: current; else it signs until then (rotation grace)


class CreatedWebhookSecret(msgspec.Struct, frozen=True, kw_only=True):
    secret: str  # shown once
    record: WebhookSecretInfo


COLUMNS = "id, org_id, endpoint_id, right(secret, 4) as last4, created_at, expires_at"


def _new_secret() -> str:
    return SECRET_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(RANDOM_LENGTH))


async def _find_webhook(
    conn: asyncpg.Connection, org_id: uuid.UUID, endpoint_id: uuid.UUID, affiliate_id: uuid.UUID | None, *,
    lock: bool = False,
) -> None:
    found = await conn.fetchval(
        "select id from delivery_endpoints where org_id = $1 and id = $2 and kind = 'webhook'"
        f" and ($3::uuid is null or affiliate_id = $3){' for update' if lock else ''}",
        org_id, endpoint_id, affiliate_id)
    if found is None:
        raise NotFound("not_found", "webhook not found")


async def issue_webhook_secret(
    conn: asyncpg.Connection, org_id: uuid.UUID, endpoint_id: uuid.UUID, now: dt.datetime, grace: dt.timedelta,
) -> CreatedWebhookSecret:
    """A new current secret; the current ones until now expire at ``now + grace``.
    The caller has found (and, to rotate, locked) the webhook in this transaction."""
    if not dt.timedelta(0) <= grace <= WEBHOOK_SECRET_GRACE_MAX:
        raise ValidationError("invalid_grace_period", "the grace period must be between 0 and 30 days")
    await conn.execute(
        "update delivery_endpoint_secrets set expires_at = $3"
        " where org_id = $1 and endpoint_id = $2 and expires_at is null",
        org_id, endpoint_id, now + grace)
    secret = _new_secret()
    row = await conn.fetchrow(
        f"insert into delivery_endpoint_secrets (org_id, endpoint_id, secret, created_at) values ($1, $2, $3, $4)"
        f" returning {COLUMNS}",
        org_id, endpoint_id, secret, now)
    return CreatedWebhookSecret(secret=secret, record=WebhookSecretInfo(**dict(row)))


async def rotate_webhook_secret(
    conn: asyncpg.Connection, org_id: uuid.UUID, endpoint_id: uuid.UUID, now: dt.datetime,
    grace: dt.timedelta = WEBHOOK_SECRET_GRACE, affiliate_id: uuid.UUID | None = None,
) -> CreatedWebhookSecret:
    """A new current secret for the webhook; concurrent rotations of one webhook serialize."""
    async with conn.transaction():
        await _find_webhook(conn, org_id, endpoint_id, affiliate_id, lock=True)
        return await issue_webhook_secret(conn, org_id, endpoint_id, now, grace)


async def list_webhook_secrets(
    conn: asyncpg.Connection, org_id: uuid.UUID, endpoint_id: uuid.UUID, now: dt.datetime,
    affiliate_id: uuid.UUID | None = None,
) -> list[WebhookSecretInfo]:
    """The secrets the worker signs with at ``now`` (current and in grace), newest first."""
    await _find_webhook(conn, org_id, endpoint_id, affiliate_id)
    rows = await conn.fetch(
        f"select {COLUMNS} from delivery_endpoint_secrets where org_id = $1 and endpoint_id = $2"
        f" and (expires_at is null or expires_at > $3) order by created_at desc, id desc",
        org_id, endpoint_id, now)
    return [WebhookSecretInfo(**dict(r)) for r in rows]
