"""Tracking links: one public token per (offer, affiliate) pairing.

A new link must be published to Redis (``core.store.link_configs``) once its
transaction commits; until then the edge answers 404 for its token.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import msgspec

from core.errors import NotFound
from core.ids import new_link_token


class Link(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    org_id: uuid.UUID
    offer_id: uuid.UUID
    affiliate_id: uuid.UUID
    token: str
    created_at: dt.datetime


COLUMNS = "id, org_id, offer_id, affiliate_id, token, created_at"
_TOKEN_ATTEMPTS = 3  # 96-bit tokens: a collision is astronomically rare, never fatal


async def create_link(conn: asyncpg.Connection, org_id: uuid.UUID, offer_id: uuid.UUID, affiliate_id: uuid.UUID) -> Link:
    """A new link with a fresh token; the offer and affiliate must belong to ``org_id``."""
    for _ in range(_TOKEN_ATTEMPTS):
        row = await conn.fetchrow(
            f"insert into links (org_id, offer_id, affiliate_id, token)"
            f" select o.org_id, o.id, a.id, $4 from offers o"
            f" join affiliates a on a.org_id = o.org_id and a.id = $3"
            f" where o.org_id = $1 and o.id = $2"
            f" on conflict (token) do nothing returning {COLUMNS}",
            org_id, offer_id, affiliate_id, new_link_token(),
        )
        if row is not None:
            return Link(**dict(row))
        if not await _both_exist(conn, org_id, offer_id, affiliate_id):
            break
    else:
        raise RuntimeError("could not allocate a unique link token")
    offer_exists = await conn.fetchval("select exists(select 1 from offers where org_id = $1 and id = $2)", org_id, offer_id)
    raise NotFound("not_found", "affiliate not found" if offer_exists else "offer not found")


async def _both_exist(conn: asyncpg.Connection, org_id: uuid.UUID, offer_id: uuid.UUID, affiliate_id: uuid.UUID) -> bool:
    return await conn.fetchval(
        "select exists(select 1 from offers where org_id = $1 and id = $2)"
        " and exists(select 1 from affiliates where org_id = $1 and id = $3)",
        org_id, offer_id, affiliate_id,
    )
