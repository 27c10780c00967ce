"""The delivery queue in Postgres, as the worker (owner role, every organization) runs it.

- ``take_outbox_events`` / ``insert_deliveries`` / ``mark_dispatched``: the dispatcher's
  transaction turns outbox events into one delivery per receiving endpoint. Deliveries
  are unique per (endpoint, event), so taking an event twice makes nothing new.
- ``claim_due``: the sender leases due deliveries by moving ``next_attempt_at`` past
  the request's timeouts; a sender that dies mid-request leaves them due again when the
  lease ends (at least once; receivers dedupe on the event id).
- ``record_attempts``: one transaction per batch of finished requests: the attempts,
  each delivery's new state, and the endpoints' failure streaks.

Wake-ups go through ``NOTIFY`` (sent on commit, so never before the rows are visible).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Iterable, Sequence

import asyncpg
import msgspec

from core.delivery_routing import EndpointRoute

OUTBOX_CHANNEL = "afftok_outbox"
DELIVERIES_CHANNEL = "afftok_deliveries"
# next_attempt_at of a disabled endpoint's deliveries: never due (asyncpg stores it as 'infinity').
HELD = dt.datetime.max.replace(tzinfo=dt.timezone.utc)


class OutboxEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    event_id: uuid.UUID
    org_id: uuid.UUID
    event_type: str
    affiliate_id: uuid.UUID | None
    offer_id: uuid.UUID | None
    payload: dict
    created_at: dt.datetime
    subs: tuple[str | None, ...]  # the click's sub1..sub5 (all None without a click)


class NewDelivery(msgspec.Struct, frozen=True, kw_only=True):
    org_id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    body: bytes
    event_created_at: dt.datetime
    retry_until: dt.datetime


class DueDelivery(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    org_id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    body: bytes
    attempt: int  # the number of the attempt about to be made
    event_created_at: dt.datetime
    retry_until: dt.datetime
    kind: str
    url: str
    secrets: tuple[str, ...]  # live signing secrets, newest first (webhooks)


class AttemptResult(msgspec.Struct, frozen=True, kw_only=True):
    delivery: DueDelivery
    started_at: dt.datetime
    finished_at: dt.datetime
    latency_ms: int
    url: str
    status_code: int | None
    error: str | None
    excerpt: str
    verdict: str  # "delivered" | "retry" | "dead"
    next_attempt_at: dt.datetime | None
    gone: bool = False  # the receiver answered 410: disable the endpoint


async def notify(conn: asyncpg.Connection, channel: str) -> None:
    """Wake the listeners of ``channel`` once this transaction commits."""
    await conn.execute("select pg_notify($1, '')", channel)


_TAKE = """
select e.id, e.event_id, e.org_id, e.event_type, e.affiliate_id, e.offer_id, e.payload, e.created_at,
       c.sub1, c.sub2, c.sub3, c.sub4, c.sub5
from (select * from outbox_events where dispatched_at is null order by id limit $1 for update skip locked) e
left join conversions cv on cv.id = e.conversion_id
left join clicks c on c.click_id = cv.click_id and c.clicked_at = cv.clicked_at
order by e.id
"""


async def take_outbox_events(conn: asyncpg.Connection, limit: int) -> list[OutboxEvent]:
    """Lock up to ``limit`` undispatched events (others' locked ones are skipped)."""
    rows = await conn.fetch(_TAKE, limit)
    return [OutboxEvent(
        id=r["id"], event_id=r["event_id"], org_id=r["org_id"], event_type=r["event_type"],
        affiliate_id=r["affiliate_id"], offer_id=r["offer_id"], payload=r["payload"], created_at=r["created_at"],
        subs=(r["sub1"], r["sub2"], r["sub3"], r["sub4"], r["sub5"]),
    ) for r in rows]


async def load_routes(conn: asyncpg.Connection, org_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, list[EndpointRoute]]:
    rows = await conn.fetch(
        "select id, org_id, kind, affiliate_id, offer_id, goal, event_types, created_at from delivery_endpoints"
        " where org_id = any($1::uuid[]) and status = 'active'", list(set(org_ids)))
    routes: dict[uuid.UUID, list[EndpointRoute]] = {}
    for r in rows:
        routes.setdefault(r["org_id"], []).append(EndpointRoute(
            id=r["id"], kind=r["kind"], affiliate_id=r["affiliate_id"], offer_id=r["offer_id"], goal=r["goal"],
            event_types=tuple(r["event_types"]), created_at=r["created_at"]))
    return routes


async def insert_deliveries(conn: asyncpg.Connection, rows: Sequence[NewDelivery], now: dt.datetime) -> int:
    """Insert the new ones, due at ``now``; return how many were new."""
    if not rows:
        return 0
    inserted = await conn.fetch(
        "insert into deliveries (org_id, endpoint_id, event_id, event_type, body, event_created_at, retry_until,"
        " created_at, next_attempt_at)"
        " select *, $8, $8 from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::bytea[],"
        " $6::timestamptz[], $7::timestamptz[]) on conflict (endpoint_id, event_id) do nothing returning id",
        [d.org_id for d in rows], [d.endpoint_id for d in rows], [d.event_id for d in rows],
        [d.event_type for d in rows], [d.body for d in rows], [d.event_created_at for d in rows],
        [d.retry_until for d in rows], now)
    return len(inserted)


async def mark_dispatched(conn: asyncpg.Connection, ids: Sequence[int], now: dt.datetime) -> None:
    await conn.execute("update outbox_events set dispatched_at = $2 where id = any($1::bigint[])", list(ids), now)


_CLAIM = """
with due as (
    select d.id from deliveries d join delivery_endpoints e on e.id = d.endpoint_id and e.status = 'active'
    where d.status = 'pending' and d.next_attempt_at <= $1 and not (select paused from delivery_switch)
    order by d.next_attempt_at limit $2 for update of d skip locked
)
update deliveries d set next_attempt_at = $3
from due, delivery_endpoints e
where d.id = due.id and e.id = d.endpoint_id and e.status = 'active'
returning d.id, d.org_id, d.endpoint_id, d.event_id, d.event_type, d.body, d.attempts + 1 as attempt,
          d.event_created_at, d.retry_until, e.kind, e.url,
          array(select s.secret from delivery_endpoint_secrets s
                where s.endpoint_id = e.id and (s.expires_at is null or s.expires_at > $1)
                order by s.created_at desc) as secrets
"""


async def claim_due(conn: asyncpg.Connection, now: dt.datetime, limit: int, lease_until: dt.datetime) -> list[DueDelivery]:
    rows = await conn.fetch(_CLAIM, now, limit, lease_until)
    return [DueDelivery(**{k: (tuple(v) if k == "secrets" else v) for k, v in r.items()}) for r in rows]


async def due_count(conn: asyncpg.Connection, now: dt.datetime) -> tuple[int, int]:
    """(undispatched outbox events, pending deliveries due now): the queue depths."""
    row = await conn.fetchrow(
        "select (select count(*) from outbox_events where dispatched_at is null) as outbox,"
        " (select count(*) from deliveries where status = 'pending' and next_attempt_at <= $1) as due", now)
    return row["outbox"], row["due"]


async def is_paused(conn: asyncpg.Connection) -> bool:
    return bool(await conn.fetchval("select paused from delivery_switch"))


class SwitchStatus(msgspec.Struct, frozen=True, kw_only=True):
    paused: bool
    changed_at: dt.datetime
    changed_by: str
    outbox: int  # undispatched events
    pending: int
    dead: int
    disabled_endpoints: int


_STATUS = """
select s.paused, s.changed_at, s.changed_by,
       (select count(*) from outbox_events where dispatched_at is null) as outbox,
       (select count(*) from deliveries where status = 'pending') as pending,
       (select count(*) from deliveries where status = 'dead') as dead,
       (select count(*) from delivery_endpoints where status = 'disabled') as disabled_endpoints
from delivery_switch s
"""


async def switch_status(conn: asyncpg.Connection) -> SwitchStatus:
    """The kill switch and the queue it holds back, every organization (the operator's view)."""
    return SwitchStatus(**dict(await conn.fetchrow(_STATUS)))


async def set_paused(conn: asyncpg.Connection, paused: bool, changed_by: str) -> None:
    await conn.execute(
        "update delivery_switch set paused = $1, changed_at = now(), changed_by = $2", paused, changed_by)
    await notify(conn, DELIVERIES_CHANNEL)
