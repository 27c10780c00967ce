"""Replaying deliveries: sending an event again after it was delivered or given up on.

A replay makes the delivery pending again, due now, with a fresh retry budget
(``retry_until = now + max_age``), exactly as if the event had just happened; its
attempts so far stay, and the next one is numbered after them. The receiver gets the
same body and event id as before (its dedupe key), so replaying a delivered event is
safe for a receiver that dedupes.

Refused (``Conflict``):

- ``already_pending``: the delivery is still being tried (it may be in flight now);
- ``endpoint_disabled``: nothing would be sent; enable the endpoint first (that
  releases its pending deliveries), then replay.

The sender is woken by ``NOTIFY`` on commit. Every function runs in the caller's tenant
transaction; an affiliate reaches only its own endpoints' deliveries, and any other id
is ``NotFound`` exactly like a missing one.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from core.errors import Conflict, NotFound
from core.store.deliveries import DELIVERIES_CHANNEL, notify

_PENDING_AGAIN = "status = 'pending', next_attempt_at = $3, retry_until = $4, delivered_at = null, dead_at = null"


def _disabled() -> Conflict:
    return Conflict("endpoint_disabled", "the endpoint is disabled: enable it (that releases what is pending), then replay")


async def replay_delivery(
    conn: asyncpg.Connection, org_id: uuid.UUID, delivery_id: uuid.UUID, now: dt.datetime, max_age: dt.timedelta,
    affiliate_id: uuid.UUID | None = None,
) -> None:
    """Make one delivered or dead delivery pending again, due at ``now``."""
    row = await conn.fetchrow(
        "select d.status, e.status as endpoint_status from deliveries d join delivery_endpoints e on e.id = d.endpoint_id"
        " where d.org_id = $1 and d.id = $2 and ($3::uuid is null or e.affiliate_id = $3) for update of d",
        org_id, delivery_id, affiliate_id)
    if row is None:
        raise NotFound("not_found", "delivery not found")
    if row["status"] == "pending":
        raise Conflict("already_pending", "the delivery is pending already: it is sent when due")
    if row["endpoint_status"] != "active":
        raise _disabled()
    await conn.execute(
        f"update deliveries set {_PENDING_AGAIN} where org_id = $1 and id = $2",
        org_id, delivery_id, now, now + max_age)
    await notify(conn, DELIVERIES_CHANNEL)


async def replay_dead(
    conn: asyncpg.Connection, org_id: uuid.UUID, endpoint_id: uuid.UUID, now: dt.datetime, max_age: dt.timedelta,
    affiliate_id: uuid.UUID | None = None,
) -> int:
    """Make every dead delivery of the endpoint pending again; return how many."""
    status = await conn.fetchval(
        "select status from delivery_endpoints where org_id = $1 and id = $2"
        " and ($3::uuid is null or affiliate_id = $3) for share",
        org_id, endpoint_id, affiliate_id)
    if status is None:
        raise NotFound("not_found", "endpoint not found")
    if status != "active":
        raise _disabled()
    replayed = await conn.fetch(
        f"update deliveries set {_PENDING_AGAIN} where org_id = $1 and endpoint_id = $2 and status = 'dead'"
        f" returning id",
        org_id, endpoint_id, now, now + max_age)
    await notify(conn, DELIVERIES_CHANNEL)
    return len(replayed)
