"""Writing the audit log, locking a change's target, and audit retention.

``record_audit`` runs inside the transaction of the change it records (``api.audit``);
the application role may only insert and read these rows (migration 0006).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
import msgspec

from core.audit import AuditEvent


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    org_id: uuid.UUID
    occurred_at: dt.datetime
    actor_type: str
    actor_id: str
    action: str
    target_type: str
    target_id: str | None
    before: Any
    after: Any
    correlation_id: str | None
    client_ip: str | None
    user_agent: str | None


COLUMNS = (
    "id, org_id, occurred_at, actor_type, actor_id, action, target_type, target_id, before, after,"
    " correlation_id, host(client_ip) as client_ip, user_agent"
)

_INSERT = """
insert into audit_log (org_id, actor_type, actor_id, action, target_type, target_id, before, after,
                       correlation_id, client_ip, user_agent)
values ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10::inet, $11)
returning id
"""


async def record_audit(conn: asyncpg.Connection, event: AuditEvent) -> int:
    """Insert one audit row in the caller's transaction; return its id."""
    return await conn.fetchval(
        _INSERT, event.org_id, event.actor_type, event.actor_id, event.action, event.target_type,
        event.target_id, event.before, event.after, event.correlation_id, event.client_ip, event.user_agent,
    )


# The rows a change may lock before reading its "before" snapshot, and their key columns.
_LOCKABLE = {
    "organizations": ("id",),
    "advertisers": ("org_id", "id"),
    "affiliates": ("org_id", "id"),
    "offers": ("org_id", "id"),
    "offer_affiliates": ("org_id", "offer_id", "affiliate_id"),
    "api_keys": ("org_id", "id"),
}


async def lock_target(conn: asyncpg.Connection, table: str, *key: Any) -> None:
    """Lock the row ``key`` names (if it exists) until the transaction ends.

    Taken before reading the "before" snapshot, so a concurrent change of the same row
    waits and the snapshot is the state this change replaces. A missing (or another
    organization's) row locks nothing; the change that follows reports it.
    """
    columns = _LOCKABLE[table]
    if len(key) != len(columns):
        raise TypeError(f"{table} is locked by {', '.join(columns)}")
    where = " and ".join(f"{c} = ${n}" for n, c in enumerate(columns, start=1))
    await conn.execute(f"select 1 from {table} where {where} for update", *key)


_DELETE_EXPIRED = """
with expired as (
    select id from audit_log where occurred_at < $1 order by occurred_at limit $2
)
delete from audit_log a using expired e where a.id = e.id
"""


async def delete_expired_audit_rows(conn: asyncpg.Connection, before: dt.datetime, *, limit_rows: int) -> int:
    """Delete up to ``limit_rows`` audit rows older than ``before``, every organization; return how many.

    Runs as the owner role (the application role cannot delete). The table's trigger
    keeps any row younger than 365 days whatever ``before`` says, so a wrong clock can
    shorten nothing. Call again until it returns less than ``limit_rows``.
    """
    status = await conn.execute(_DELETE_EXPIRED, before, limit_rows)
    return int(status.rsplit(" ", 1)[1])
