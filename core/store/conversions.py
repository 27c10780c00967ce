"""Conversions' reads and writes for the conversion worker (owner role, across organizations).

Everything here runs inside the worker's one transaction per batch; the caller decides
(``workers.conversion_apply``), this module reads and writes:

- ``lock_conversions``: the existing conversions of the batch's dedupe keys
  ``(org_id, advertiser_id, external_id, goal_key)``, locked ``for update`` so two
  consumers applying postbacks of the same order serialize.
- ``insert_conversions`` / ``update_status`` / ``insert_history`` / ``insert_outbox``:
  a new conversion's unique key is the dedupe key, so a race between two consumers on a
  brand-new key fails one transaction (retried) rather than doubling.

The clicks postbacks name are read by ``core.store.conversion_clicks``; postbacks
waiting for theirs live in ``core.store.conversion_waits``.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from typing import Iterable, Sequence

import asyncpg
import msgspec

from core.attribution import at_ms
from core.models import PostbackRecord
from core.store.conversion_clicks import ClickFacts
from core.store.deliveries import OUTBOX_CHANNEL, notify

DedupeKey = tuple[uuid.UUID, uuid.UUID, str, str]  # org, advertiser, external_id, goal_key


@functools.lru_cache(maxsize=4096)
def _uuid(text: str) -> uuid.UUID:
    """A batch names few organizations and advertisers many times: parse each once."""
    return uuid.UUID(text)


def dedupe_key(record: PostbackRecord) -> DedupeKey:
    return (_uuid(record.org_id), _uuid(record.advertiser_id), record.external_id, record.goal or "")


class StoredConversion(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    org_id: uuid.UUID
    advertiser_id: uuid.UUID
    external_id: str
    goal: str | None
    status: str
    reason: str | None
    offer_id: uuid.UUID | None
    affiliate_id: uuid.UUID | None
    click_id: str | None
    revenue_minor: int
    payout_minor: int
    currency: str | None
    cap_counted: bool
    received_at: dt.datetime  # when the edge accepted its first postback: its day and month for caps

    @property
    def key(self) -> DedupeKey:
        return (self.org_id, self.advertiser_id, self.external_id, self.goal or "")


_COLUMNS = ("id, org_id, advertiser_id, external_id, goal, status, reason, offer_id, affiliate_id, click_id,"
            " revenue_minor, payout_minor, rtrim(currency) as currency, cap_counted, received_at")


def _stored(row) -> StoredConversion:
    return StoredConversion(**dict(row))


async def lock_conversions(conn: asyncpg.Connection, keys: Iterable[DedupeKey]) -> dict[DedupeKey, StoredConversion]:
    """The existing conversions with these keys, locked for this transaction, in key order."""
    keys = sorted(set(keys))
    if not keys:
        return {}
    rows = await conn.fetch(
        f"select {_COLUMNS} from conversions c"
        " where (org_id, advertiser_id, external_id, goal_key) in"
        " (select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]))"
        " order by org_id, advertiser_id, external_id, goal_key for update",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys],
    )
    return {c.key: c for c in map(_stored, rows)}


async def lock_conversion(conn: asyncpg.Connection, org_id: uuid.UUID, conversion_id: uuid.UUID) -> StoredConversion | None:
    row = await conn.fetchrow(f"select {_COLUMNS} from conversions where org_id = $1 and id = $2 for update",
                              org_id, conversion_id)
    return _stored(row) if row else None


class NewConversion(msgspec.Struct, kw_only=True):
    record: PostbackRecord
    status: str
    reason: str | None
    fraud_flags: list[str]
    click: ClickFacts | None
    revenue_minor: int = 0
    payout_minor: int = 0
    currency: str | None = None
    rule_applied: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    country: str | None = None
    cap_counted: bool = False


_INSERT = """
insert into conversions (id, org_id, advertiser_id, click_id, clicked_at, offer_id, affiliate_id, link_id,
    external_id, goal, status, reason, fraud_flags, sale_amount_minor, sale_currency, revenue_minor, payout_minor,
    currency, rule_applied, product_id, order_id, customer_id, metadata, ip, user_agent, country, source,
    postback_id, received_at, cap_counted, click_country, device_type, sub1)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
        $23::text::jsonb, $24::inet, $25, $26, $27, $28, $29, $30, $31, $32, $33)
"""


def stored_of(new: NewConversion) -> StoredConversion:
    """The row ``insert_conversions`` will write for ``new``, with a fresh id."""
    r, click = new.record, new.click
    return StoredConversion(
        id=uuid.uuid4(), org_id=_uuid(r.org_id), advertiser_id=_uuid(r.advertiser_id),
        external_id=r.external_id, goal=r.goal, status=new.status, reason=new.reason,
        offer_id=click.offer_id if click else None, affiliate_id=click.affiliate_id if click else None,
        click_id=r.click_id, revenue_minor=new.revenue_minor, payout_minor=new.payout_minor, currency=new.currency,
        cap_counted=new.cap_counted, received_at=at_ms(r.ts_ms),
    )


async def insert_conversions(conn: asyncpg.Connection, rows: Sequence[tuple[StoredConversion, NewConversion]]) -> None:
    """Insert new conversions in one pipelined round trip. A row whose dedupe key another
    transaction inserted meanwhile fails the whole transaction (the worker retries it)."""
    if not rows:
        return
    args = []
    for stored, new in rows:
        r, click = new.record, new.click
        args.append((
            stored.id, stored.org_id, stored.advertiser_id, r.click_id, click.clicked_at if click else None,
            stored.offer_id, stored.affiliate_id, click.link_id if click else None, r.external_id, r.goal,
            stored.status, stored.reason, new.fraud_flags, r.amount_minor,
            r.currency if r.amount_minor is not None else None, stored.revenue_minor, stored.payout_minor,
            stored.currency, new.rule_applied, r.product_id, r.order_id, r.customer_id, r.metadata, new.ip,
            new.user_agent, new.country, r.source, r.postback_id, stored.received_at, stored.cap_counted,
            click.country if click else None, click.device_type if click else None, click.sub1 if click else None,
        ))
    await conn.executemany(_INSERT, args)


async def update_status(
    conn: asyncpg.Connection, conversion: StoredConversion, status: str, reason: str | None, cap_counted: bool,
) -> None:
    await conn.execute(
        "update conversions set status = $3, reason = $4, cap_counted = $5, updated_at = now()"
        " where org_id = $1 and id = $2",
        conversion.org_id, conversion.id, status, reason, cap_counted,
    )
    conversion.status, conversion.reason, conversion.cap_counted = status, reason, cap_counted


class HistoryRow(msgspec.Struct, kw_only=True):
    org_id: uuid.UUID
    conversion_id: uuid.UUID
    from_status: str | None
    to_status: str
    reason: str | None
    actor: str
    revenue_delta_minor: int
    payout_delta_minor: int
    currency: str | None
    correlation_id: str | None


async def insert_history(conn: asyncpg.Connection, rows: Sequence[HistoryRow]) -> None:
    """Record status changes. The caller counts them into the statistics rollups
    (``core.store.stats_rollups.roll_up_history``) last in its transaction, after every
    other counter, so the worker and an operator's change lock rows in the same order."""
    if rows:
        await conn.executemany(
            "insert into conversion_status_history (org_id, conversion_id, from_status, to_status, reason, actor,"
            " revenue_delta_minor, payout_delta_minor, currency, correlation_id)"
            " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [(h.org_id, h.conversion_id, h.from_status, h.to_status, h.reason, h.actor, h.revenue_delta_minor,
              h.payout_delta_minor, h.currency, h.correlation_id) for h in rows],
        )


class OutboxRow(msgspec.Struct, kw_only=True):
    org_id: uuid.UUID
    event_type: str
    conversion_id: uuid.UUID | None
    affiliate_id: uuid.UUID | None
    offer_id: uuid.UUID | None
    payload: dict


async def insert_outbox(conn: asyncpg.Connection, rows: Sequence[OutboxRow]) -> None:
    if rows:
        await conn.executemany(
            "insert into outbox_events (org_id, event_type, conversion_id, affiliate_id, offer_id, payload)"
            " values ($1, $2, $3, $4, $5, $6)",
            [(o.org_id, o.event_type, o.conversion_id, o.affiliate_id, o.offer_id, o.payload) for o in rows],
        )
        await notify(conn, OUTBOX_CHANNEL)  # wakes the delivery worker once this commits


def conversion_event(event_type: str, conversion: StoredConversion, record_goal: str | None = None) -> OutboxRow:
    """An affiliate-facing event: its payout, never the advertiser's revenue."""
    return OutboxRow(
        org_id=conversion.org_id, event_type=event_type, conversion_id=conversion.id,
        affiliate_id=conversion.affiliate_id, offer_id=conversion.offer_id,
        payload={
            "conversion_id": str(conversion.id), "status": conversion.status, "reason": conversion.reason,
            "offer_id": str(conversion.offer_id) if conversion.offer_id else None,
            "affiliate_id": str(conversion.affiliate_id) if conversion.affiliate_id else None,
            "click_id": conversion.click_id, "external_id": conversion.external_id, "goal": conversion.goal,
            "payout_minor": conversion.payout_minor, "currency": conversion.currency,
        },
    )
