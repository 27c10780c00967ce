"""Organizations: the tenants. Every other catalog row belongs to one."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Literal

import asyncpg
import msgspec

from core.catalog_rules import validate_currency, validate_name
from core.errors import NotFound, ValidationError
from core.retention import (
    CLICKS_RETENTION_DAYS_MAX, CLICKS_RETENTION_DAYS_MIN, CONVERSIONS_RETENTION_DAYS_MAX,
    CONVERSIONS_RETENTION_DAYS_MIN,
)

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


class OrgDataSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What an organization stores and for how long (bounds in ``core.retention``)."""

    org_id: uuid.UUID
    ip_truncate: bool
    clicks_retention_days: int
    conversions_retention_days: int


_DATA_SETTINGS_COLUMNS = "id as org_id, ip_truncate, clicks_retention_days, conversions_retention_days"


def _validate_days(value: int | None, field: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValidationError(f"invalid_{field}", f"{field} must be a whole number of days from {low} to {high}")
    return value


async def get_org_data_settings(conn: asyncpg.Connection, org_id: uuid.UUID | str) -> OrgDataSettings:
    row = await conn.fetchrow(f"select {_DATA_SETTINGS_COLUMNS} from organizations where id = $1::uuid", str(org_id))
    if row is None:
        raise NotFound("not_found", "no such organization")
    return OrgDataSettings(**dict(row))


async def update_org_data_settings(
    conn: asyncpg.Connection, org_id: uuid.UUID | str, *, ip_truncate: bool | None = None,
    clicks_retention_days: int | None = None, conversions_retention_days: int | None = None,
) -> OrgDataSettings:
    """Change the given settings (``None`` leaves one as it is); return all of them.

    Raises ``ValidationError`` for a value out of bounds (nothing is written) and
    ``NotFound`` for an organization that does not exist or is not the transaction's.

    The caller must republish the organization's link configs after the transaction
    commits (``load_link_configs(conn, org_id)`` then ``publish_links``): the edge reads
    ``ip_truncate`` from them, and until they are republished it keeps storing
    addresses as before. Retention changes take effect at the next maintenance run.
    """
    if ip_truncate is not None and not isinstance(ip_truncate, bool):
        raise ValidationError("invalid_ip_truncate", "ip_truncate must be true or false")
    clicks = _validate_days(
        clicks_retention_days, "clicks_retention_days", CLICKS_RETENTION_DAYS_MIN, CLICKS_RETENTION_DAYS_MAX)
    conversions = _validate_days(
        conversions_retention_days, "conversions_retention_days",
        CONVERSIONS_RETENTION_DAYS_MIN, CONVERSIONS_RETENTION_DAYS_MAX)
    row = await conn.fetchrow(
        "update organizations set ip_truncate = coalesce($2, ip_truncate),"
        " clicks_retention_days = coalesce($3, clicks_retention_days),"
        " conversions_retention_days = coalesce($4, conversions_retention_days)"
        f" where id = $1::uuid returning {_DATA_SETTINGS_COLUMNS}",
        str(org_id), ip_truncate, clicks, conversions,
    )
    if row is None:
        raise NotFound("not_found", "no such organization")
    return OrgDataSettings(**dict(row))
