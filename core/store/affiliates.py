"""Affiliates: the publishers who promote offers through tracking links.

An affiliate's status feeds every one of its links' configs, so a status change must be
followed by publishing those links (the caller does it after commit).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal, Mapping

import asyncpg
import msgspec

from core.catalog_rules import validate_email, validate_name
from core.errors import NotFound, ValidationError

AffiliateStatus = Literal["active", "inactive", "banned"]
STATUSES = ("active", "inactive", "banned")


class Affiliate(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    org_id: uuid.UUID
    name: str
    email: str | None
    status: str
    created_at: dt.datetime


COLUMNS = "id, org_id, name, email, status, created_at"


def _check_status(status: str) -> str:
    if status not in STATUSES:
        raise ValidationError("invalid_status", f"status must be one of {', '.join(STATUSES)}")
    return status


async def create_affiliate(
    conn: asyncpg.Connection, org_id: uuid.UUID, name: str, *, email: str | None = None,
    status: AffiliateStatus = "active",
) -> Affiliate:
    row = await conn.fetchrow(
        f"insert into affiliates (org_id, name, email, status) values ($1, $2, $3, $4) returning {COLUMNS}",
        org_id, validate_name(name, "affiliate name"), validate_email(email), _check_status(status),
    )
    return Affiliate(**dict(row))


async def update_affiliate(
    conn: asyncpg.Connection, org_id: uuid.UUID, affiliate_id: uuid.UUID, changes: Mapping[str, Any]
) -> Affiliate:
    """Apply ``changes`` (any of name, email, status); an id from another org is NotFound."""
    checks = {"name": lambda v: validate_name(v, "affiliate name"), "email": validate_email, "status": _check_status}
    unknown = set(changes) - set(checks)
    if unknown:
        raise ValidationError("invalid_request", f"cannot change {', '.join(sorted(unknown))}")
    values = {k: checks[k](v) for k, v in changes.items()}
    assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(values, start=3))
    sql = (
        f"update affiliates set {assignments} where org_id = $1 and id = $2 returning {COLUMNS}"
        if values else f"select {COLUMNS} from affiliates where org_id = $1 and id = $2"
    )
    row = await conn.fetchrow(sql, org_id, affiliate_id, *values.values())
    if row is None:
        raise NotFound("not_found", "affiliate not found")
    return Affiliate(**dict(row))
