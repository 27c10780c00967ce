"""Advertisers: the parties whose offers a network runs.

``postback_token_last4`` tells which postback token is current (None: none issued);
the token itself is never stored (``core.store.postback_secrets``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

import asyncpg
import msgspec

from core.catalog_rules import validate_name
from core.errors import ValidationError

AdvertiserStatus = Literal["active", "inactive"]


class Advertiser(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    status: str
    created_at: dt.datetime
    postback_token_last4: str | None = None


COLUMNS = "id, org_id, name, status, created_at, postback_token_last4"


async def create_advertiser(
    conn: asyncpg.Connection, org_id: uuid.UUID, name: str, *, status: AdvertiserStatus = "active"
) -> Advertiser:
    if status not in ("active", "inactive"):
        raise ValidationError("invalid_status", "status must be active or inactive")
    row = await conn.fetchrow(
        f"insert into advertisers (org_id, name, status) values ($1, $2, $3) returning {COLUMNS}",
        org_id, validate_name(name, "advertiser name"), status,
    )
    return Advertiser(**dict(row))
