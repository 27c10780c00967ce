"""Counting tracked events per organization and month (``usage_monthly``).

``record_tracked_events`` must run in the transaction that made the events durable,
with the counts of rows that transaction actually inserted: then a redelivered batch,
which inserts nothing, counts nothing, and a rolled-back batch counts nothing either.
Today the ingest worker calls it for clicks (``workers.click_ingest``); conversions are
to call it the same way from the transaction that records them.

Events past the plan's monthly limit are counted again in ``overage_events``
(``core.plans.overage_delta``), computed against the row as it is when the update takes
its lock, so concurrent batches neither lose nor double an increment. Runs as the owner
role (workers); the api only reads.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Mapping

import asyncpg
import msgspec

from core.plans import PLANS


class UsageMonth(msgspec.Struct, frozen=True, kw_only=True):
    month: dt.date  # the first day of the month (UTC)
    events: int
    overage_events: int


TrackedEvents = Mapping[tuple[uuid.UUID, dt.date], int]  # (org_id, month) -> new events


# The input joined to each organization's monthly limit; rows in key order, so
# concurrent batches lock shared rows in the same order and cannot deadlock. Events of
# an organization that does not exist are not counted (there is no row to bill).
# The update applies core.plans.overage_delta to the locked, current row.
_RECORD = """
with input as (
    select t.org_id, t.month, t.n, p.events_limit
    from unnest($1::uuid[], $2::date[], $3::bigint[]) as t (org_id, month, n)
    join organizations o on o.id = t.org_id
    join unnest($4::text[], $5::bigint[]) as p (plan, events_limit) on p.plan = o.plan
)
insert into usage_monthly as u (org_id, month, events, overage_events)
select org_id, month, n, greatest(0, n - coalesce(events_limit, n))
from input
order by org_id, month
on conflict (org_id, month) do update set
    events = u.events + excluded.events,
    overage_events = u.overage_events + (
        select greatest(0, u.events + excluded.events - coalesce(i.events_limit, u.events + excluded.events))
             - greatest(0, u.events - coalesce(i.events_limit, u.events))
        from input i where i.org_id = u.org_id and i.month = u.month
    ),
    updated_at = now()
"""

_PLAN_NAMES = [p.name for p in PLANS.values()]
_PLAN_EVENT_LIMITS = [p.tracked_events_per_month for p in PLANS.values()]


async def record_tracked_events(conn: asyncpg.Connection, events: TrackedEvents) -> None:
    """Add ``events`` to their organizations' months, in the caller's transaction."""
    counted = sorted((key, n) for key, n in events.items() if n > 0)
    if not counted:
        return
    await conn.execute(
        _RECORD,
        [org_id for (org_id, _), _ in counted], [month for (_, month), _ in counted], [n for _, n in counted],
        _PLAN_NAMES, _PLAN_EVENT_LIMITS,
    )
