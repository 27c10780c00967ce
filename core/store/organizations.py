"""Organizations: the tenants. Every other catalog row belongs to one."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

import asyncpg
import msgspec

from core.catalog_rules import validate_currency, validate_name
from core.errors import ValidationError

Plan = Literal["starter", "professional", "enterprise"]


class Organization(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    name: str
    plan: str
    default_currency: str
    created_at: dt.datetime


_COLUMNS = "id, name, plan, default_currency, created_at"


async def create_organization(
    conn: asyncpg.Connection, name: str, *, plan: Plan = "starter", default_currency: str = "USD"
) -> Organization:
    if plan not in ("starter", "professional", "enterprise"):
        raise ValidationError("invalid_plan", "plan must be starter, professional or enterprise")
    row = await conn.fetchrow(
        f"insert into organizations (name, plan, default_currency) values ($1, $2, $3) returning {_COLUMNS}",
        validate_name(name, "organization name"), plan, validate_currency(default_currency),
    )
    return Organization(**dict(row))


async def find_organization_by_name(conn: asyncpg.Connection, name: str) -> Organization | None:
    """The oldest organization called ``name`` (names are not unique)."""
    row = await conn.fetchrow(
        f"select {_COLUMNS} from organizations where name = $1 order by created_at, id limit 1", name
    )
    return Organization(**dict(row)) if row else None
