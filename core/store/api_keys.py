"""Stored API keys: create (the full key is returned once), authenticate, list, rotate, revoke.

The database holds only the SHA-256 of a key. ``authenticate_api_key`` writes
``last_used_at`` at most once per ``TOUCH_INTERVAL`` per key, so a busy client does not
cause a row update per request.

Rotation issues a new key with the old one's name, role, scope and expiry; the old key
keeps working until ``grace_until`` and a key is rotated at most once. Revocation takes
effect at once; revoking a revoked key changes nothing and returns it as it is (the first
time and reason stay). Create, rotate and revoke take the principal granting the change,
or None for trusted system code (the CLI), and refuse keys more powerful than it.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import msgspec

from core import api_keys
from core.catalog_rules import validate_name
from core.errors import Conflict, NotFound, Unauthorized, ValidationError
from core.permissions import Principal, authorize_grant, scope_for

TOUCH_INTERVAL = dt.timedelta(seconds=60)
GRACE_PERIOD_MAX = dt.timedelta(days=30)
REASON_MAX_LENGTH = 500


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    prefix: str
    last4: str
    role: str
    created_at: dt.datetime
    expires_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None
    advertiser_id: uuid.UUID | None = None
    affiliate_id: uuid.UUID | None = None
    rotated_from: uuid.UUID | None = None
    replaced_by: uuid.UUID | None = None
    grace_until: dt.datetime | None = None
    revoked_reason: str | None = None


class CreatedApiKey(msgspec.Struct, frozen=True, kw_only=True):
    key: str  # shown once; never stored
    record: ApiKey


_COLUMNS = (
    "id, org_id, name, prefix, last4, role, created_at, expires_at, revoked_at, last_used_at,"
    " advertiser_id, affiliate_id, rotated_from, replaced_by, grace_until, revoked_reason"
)
COLUMNS = _COLUMNS


async def create_api_key(
    conn: asyncpg.Connection, org_id: uuid.UUID | str, name: str, role: str = "admin", *,
    test: bool = False, expires_at: dt.datetime | None = None,
    advertiser_id: uuid.UUID | str | None = None, affiliate_id: uuid.UUID | str | None = None,
    granted_by: Principal | None = None,
) -> CreatedApiKey:
    """Create a key for ``org_id``; the returned ``key`` is the only copy of the secret."""
    name = validate_name(name, "key name") if name else ""
    scope_for(role, _uuid(advertiser_id, "advertiser_id"), _uuid(affiliate_id, "affiliate_id"))
    if granted_by is not None:
        authorize_grant(granted_by, role)
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValidationError("invalid_expiry", "expires_at must carry a time zone")
    return await _insert(
        conn, org_id, name, role, test=test, expires_at=expires_at,
        advertiser_id=advertiser_id, affiliate_id=affiliate_id, rotated_from=None,
    )


async def _insert(
    conn: asyncpg.Connection, org_id: uuid.UUID | str, name: str, role: str, *, test: bool,
    expires_at: dt.datetime | None, advertiser_id: uuid.UUID | str | None, affiliate_id: uuid.UUID | str | None,
    rotated_from: uuid.UUID | None,
) -> CreatedApiKey:
    key = api_keys.generate_key(test=test)
    row = await conn.fetchrow(
        f"insert into api_keys (org_id, name, prefix, last4, key_hash, role, expires_at,"
        f" advertiser_id, affiliate_id, rotated_from)"
        f" select o.id, $2, $3, $4, $5, $6, $7, $8::uuid, $9::uuid, $10::uuid from organizations o where o.id = $1::uuid"
        f" and ($8::uuid is null or exists(select 1 from advertisers a where a.org_id = o.id and a.id = $8::uuid))"
        f" and ($9::uuid is null or exists(select 1 from affiliates f where f.org_id = o.id and f.id = $9::uuid))"
        f" returning {_COLUMNS}",
        str(org_id), name, api_keys.display_prefix(key), api_keys.last4(key), api_keys.hash_key(key), role,
        expires_at, advertiser_id and str(advertiser_id), affiliate_id and str(affiliate_id), rotated_from,
    )
    if row is None:
        what = "advertiser" if advertiser_id else "affiliate" if affiliate_id else "organization"
        raise NotFound("not_found", f"{what} not found")
    return CreatedApiKey(key=key, record=ApiKey(**dict(row)))


def _uuid(value: uuid.UUID | str | None, what: str) -> uuid.UUID | None:
    try:
        return None if value is None else uuid.UUID(str(value))
    except ValueError:
        raise ValidationError("invalid_scope", f"{what} must be a UUID") from None


def ensure_usable(key: ApiKey, now: dt.datetime) -> None:
    """Unauthorized, with a distinct code, unless ``key`` may be used at ``now``."""
    if key.revoked_at is not None:
        raise Unauthorized("api_key_revoked", "API key has been revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthorized("api_key_expired", "API key has expired")
    if key.grace_until is not None and key.grace_until <= now:
        raise Unauthorized("api_key_rotated", "API key was rotated and its grace period is over; use its replacement")


async def authenticate_api_key(conn: asyncpg.Connection, presented: str, now: dt.datetime) -> ApiKey:
    """The live key matching ``presented``, or Unauthorized. Malformed keys never reach SQL.

    Works before the tenant is known: the lookup goes through the security-definer
    function ``afftok_api_key_by_hash``; the ``last_used_at`` write then runs with the
    tenant set to the key's organization, under row-level security.
    """
    if not api_keys.is_well_formed(presented):
        raise Unauthorized("invalid_api_key", "API key is malformed")
    row = await conn.fetchrow(f"select {_COLUMNS} from afftok_api_key_by_hash($1)", api_keys.hash_key(presented))
    if row is None:
        raise Unauthorized("invalid_api_key", "API key is not valid")
    key = ApiKey(**dict(row))
    ensure_usable(key, now)
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_INTERVAL:
        async with conn.transaction():  # is_local: the setting ends with the outermost transaction
            await conn.execute("select set_config('afftok.org_id', $1, true)", str(key.org_id))
            # Conditional, so concurrent requests in the same minute still write once.
            await conn.execute(
                "update api_keys set last_used_at = $2::timestamptz where id = $1"
                " and (last_used_at is null or last_used_at <= $2::timestamptz - $3::interval)",
                key.id, now, TOUCH_INTERVAL,
            )
    return key


async def list_api_keys(conn: asyncpg.Connection, org_id: uuid.UUID | str) -> list[ApiKey]:
    rows = await conn.fetch(
        f"select {_COLUMNS} from api_keys where org_id = $1::uuid order by created_at desc, id desc", str(org_id)
    )
    return [ApiKey(**dict(r)) for r in rows]


async def _lock(conn: asyncpg.Connection, org_id: uuid.UUID | str, key_id: uuid.UUID | str) -> ApiKey:
    row = await conn.fetchrow(
        f"select {_COLUMNS} from api_keys where org_id = $1::uuid and id = $2::uuid for update", str(org_id), str(key_id)
    )
    if row is None:
        raise NotFound("not_found", "API key not found")
    return ApiKey(**dict(row))


async def rotate_api_key(
    conn: asyncpg.Connection, org_id: uuid.UUID | str, key_id: uuid.UUID | str, now: dt.datetime,
    grace_period: dt.timedelta, *, granted_by: Principal | None = None,
) -> CreatedApiKey:
    """A new key replacing ``key_id``, which keeps working until ``now + grace_period``."""
    if not dt.timedelta(0) <= grace_period <= GRACE_PERIOD_MAX:
        raise ValidationError("invalid_grace_period", "the grace period must be between 0 and 30 days")
    async with conn.transaction():
        old = await _lock(conn, org_id, key_id)
        if granted_by is not None:
            authorize_grant(granted_by, old.role)
        if old.revoked_at is not None:
            raise Conflict("api_key_revoked", "a revoked key cannot be rotated")
        if old.replaced_by is not None:
            raise Conflict("api_key_already_rotated", "this key was already rotated; rotate its replacement")
        if old.expires_at is not None and old.expires_at <= now:
            raise Conflict("api_key_expired", "an expired key cannot be rotated; create a new one")
        created = await _insert(
            conn, old.org_id, old.name, old.role, test=old.prefix.startswith(api_keys.TEST),
            expires_at=old.expires_at, advertiser_id=old.advertiser_id, affiliate_id=old.affiliate_id,
            rotated_from=old.id,
        )
        await conn.execute(
            "update api_keys set replaced_by = $3, grace_until = $4 where org_id = $1 and id = $2",
            old.org_id, old.id, created.record.id, now + grace_period,
        )
    return created


async def revoke_api_key(
    conn: asyncpg.Connection, org_id: uuid.UUID | str, key_id: uuid.UUID | str, now: dt.datetime,
    reason: str | None = None, *, granted_by: Principal | None = None,
) -> ApiKey:
    """Revoke a key at ``now``; revoking twice keeps the first time and reason."""
    if reason is not None and not 1 <= len(reason) <= REASON_MAX_LENGTH:
        raise ValidationError("invalid_reason", f"the reason must be 1 to {REASON_MAX_LENGTH} characters")
    async with conn.transaction():
        key = await _lock(conn, org_id, key_id)
        if granted_by is not None:
            authorize_grant(granted_by, key.role)
        if key.revoked_at is not None:
            return key
        row = await conn.fetchrow(
            f"update api_keys set revoked_at = $3, revoked_reason = $4"
            f" where org_id = $1 and id = $2 returning {_COLUMNS}",
            key.org_id, key.id, now, reason,
        )
    return ApiKey(**dict(row))
