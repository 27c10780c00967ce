"""Retention's reads and deletes. Run by the maintenance worker as the owner role,
across every organization; what to delete is decided by ``core.retention``."""

from __future__ import annotations

import datetime as dt

import asyncpg

from core.retention import OrgRetention

_ORG_RETENTIONS = """
select id::text as org_id, clicks_retention_days as clicks_days, conversions_retention_days as conversions_days
from organizations
order by id
"""

# One batch, oldest rows first (the (org_id, clicked_at) index walks them in order),
# joined back on the primary key: a partitioned table has no unique ctid.
_DELETE_EXPIRED_CLICKS = """
with expired as (
    select click_id, clicked_at from clicks
    where org_id = $1::uuid and clicked_at < $2
    order by clicked_at
    limit $3
)
delete from clicks c using expired e
where c.click_id = e.click_id and c.clicked_at = e.clicked_at
"""

# Conversions older than the cutoff, oldest first through conversions_org_created_idx,
# go with their status history (its foreign key), in one statement.
_DELETE_EXPIRED_CONVERSIONS = """
with expired as (
    select id from conversions
    where org_id = $1::uuid and created_at < $2
    order by created_at
    limit $3
),
history as (
    delete from conversion_status_history h using expired e
    where h.org_id = $1::uuid and h.conversion_id = e.id
)
delete from conversions c using expired e
where c.org_id = $1::uuid and c.id = e.id
"""


async def list_org_retentions(conn: asyncpg.Connection) -> list[OrgRetention]:
    return [OrgRetention(**dict(r)) for r in await conn.fetch(_ORG_RETENTIONS)]


async def delete_expired_clicks(conn: asyncpg.Connection, org_id: str, before: dt.datetime, *, limit_rows: int) -> int:
    """Delete up to ``limit_rows`` of ``org_id``'s clicks older than ``before``; return how many.

    One statement, its own transaction: short locks, and whatever ran before a crash
    stays done. Call again until it returns less than ``limit_rows``.
    """
    status = await conn.execute(_DELETE_EXPIRED_CLICKS, org_id, before, limit_rows)
    return int(status.rsplit(" ", 1)[1])


async def delete_expired_conversions(
    conn: asyncpg.Connection, org_id: str, before: dt.datetime, *, limit_rows: int,
) -> int:
    """Delete up to ``limit_rows`` of ``org_id``'s conversions created before ``before``,
    with their status history; return how many conversions. Same contract as
    ``delete_expired_clicks``."""
    status = await conn.execute(_DELETE_EXPIRED_CONVERSIONS, org_id, before, limit_rows)
    return int(status.rsplit(" ", 1)[1])
