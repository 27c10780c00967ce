"""Keeping the delivery tables bounded: what is finished and old enough goes.

- deliveries delivered or dead for longer than the keep period, with their attempts
  (cascade); pending ones are never touched, however old;
- outbox events dispatched longer ago than that (their deliveries carry what they need);
- webhook signing secrets past their expiry.

Each function deletes at most ``limit`` rows per call, so a large backlog is worked off
over several short transactions instead of one long lock.
"""

from __future__ import annotations

import datetime as dt

import asyncpg


async def delete_finished_deliveries(conn: asyncpg.Connection, before: dt.datetime, limit: int) -> int:
    result = await conn.execute(
        "delete from deliveries where id in (select id from deliveries where status <> 'pending'"
        " and coalesce(delivered_at, dead_at, created_at) < $1 limit $2)", before, limit)
    return int(result.split()[-1])


async def delete_dispatched_events(conn: asyncpg.Connection, before: dt.datetime, limit: int) -> int:
    result = await conn.execute(
        "delete from outbox_events where id in (select id from outbox_events where dispatched_at < $1 limit $2)",
        before, limit)
    return int(result.split()[-1])


async def delete_expired_webhook_secrets(conn: asyncpg.Connection, now: dt.datetime) -> int:
    result = await conn.execute("delete from delivery_endpoint_secrets where expires_at < $1", now)
    return int(result.split()[-1])
