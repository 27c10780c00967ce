"""Stored API keys: create (the full key is returned once), authenticate, list, revoke.

The database holds only the SHA-256 of a key. ``authenticate_api_key`` writes
``last_used_at`` at most once per ``TOUCH_INTERVAL`` per key, so a busy client does not
cause a row update per request.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import msgspec

from core import api_keys
from core.catalog_rules import validate_name
from core.errors import NotFound, Unauthorized, ValidationError

TOUCH_INTERVAL = dt.timedelta(seconds=60)


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


class CreatedApiKey(msgspec.Struct, frozen=True, kw_only=True):
    key: str  # shown once; never stored
    record: ApiKey


_COLUMNS = "id, org_id, name, prefix, last4, role, created_at, expires_at, revoked_at, last_used_at"


async def create_api_key(
    conn: asyncpg.Connection, org_id: uuid.UUID | str, name: str, role: str = "admin", *,
    test: bool = False, expires_at: dt.datetime | None = None,
) -> CreatedApiKey:
    """Create a key for ``org_id``; the returned ``key`` is the only copy of the secret."""
    name = validate_name(name, "key name") if name else ""
    if role not in api_keys.ROLES:
        raise ValidationError("invalid_role", f"role must be one of {', '.join(api_keys.ROLES)}")
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValidationError("invalid_expiry", "expires_at must carry a time zone")
    key = api_keys.generate_key(test=test)
    row = await conn.fetchrow(
        f"insert into api_keys (org_id, name, prefix, last4, key_hash, role, expires_at)"
        f" select id, $2, $3, $4, $5, $6, $7 from organizations where id = $1::uuid"
        f" returning {_COLUMNS}",
        str(org_id), name, api_keys.display_prefix(key), api_keys.last4(key), api_keys.hash_key(key), role, expires_at,
    )
    if row is None:
        raise NotFound("not_found", "organization not found")
    return CreatedApiKey(key=key, record=ApiKey(**dict(row)))


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
    if key.revoked_at is not None:
        raise Unauthorized("invalid_api_key", "API key has been revoked")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthorized("invalid_api_key", "API key has expired")
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


async def revoke_api_key(conn: asyncpg.Connection, org_id: uuid.UUID | str, key_id: uuid.UUID | str, now: dt.datetime) -> ApiKey:
    """Revoke a key; revoking twice keeps the first time."""
    row = await conn.fetchrow(
        f"update api_keys set revoked_at = coalesce(revoked_at, $3)"
        f" where org_id = $1::uuid and id = $2::uuid returning {_COLUMNS}",
        str(org_id), str(key_id), now,
    )
    if row is None:
        raise NotFound("not_found", "API key not found")
    return ApiKey(**dict(row))
