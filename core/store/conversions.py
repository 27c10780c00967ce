"""Conversions' reads and writes for the conversion worker (owner role, across organizations).

Everything here runs inside the worker's one transaction per batch; the caller decides
(``workers.conversion_ingest``), this module reads and writes:

- ``load_clicks``: the clicks postbacks name, with the offer facts attribution needs.
  A click id carries its instant (``core.ids``), so each lookup reads one partition.
- ``lock_conversions``: the existing conversions of the batch's dedupe keys
  ``(org_id, advertiser_id, external_id, goal_key)``, locked ``for update`` so two
  consumers applying postbacks of the same order serialize.
- ``insert_conversion`` / ``update_status`` / ``insert_history`` / ``insert_outbox``:
  one row each; a new conversion's unique key is the dedupe key, so a race between two
  consumers on a brand-new key fails one transaction (retried) rather than doubling.
- Waits: postbacks whose click is not in Postgres yet (``conversion_waits``).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from typing import Iterable, Sequence

import asyncpg
import msgspec

from core.caps import Caps
from core.commission import CommissionRules, Flat, GoalRule
from core.fraud_rules import FraudPolicy
from core.ids import click_id_time_ms, is_click_id
from core.models import PostbackRecord, postback_record_decoder

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_caps_decoder = msgspec.json.Decoder(Caps)
_policy_decoder = msgspec.json.Decoder(FraudPolicy)
_rules_decoder = msgspec.json.Decoder(CommissionRules)
_record_encoder = msgspec.msgpack.Encoder()


def at_ms(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


class ClickFacts(msgspec.Struct, frozen=True, kw_only=True):
    click_id: str
    clicked_at: dt.datetime
    org_id: uuid.UUID
    offer_id: uuid.UUID
    affiliate_id: uuid.UUID
    link_id: uuid.UUID
    ip: str | None
    user_agent: str | None
    country: str | None
    advertiser_id: uuid.UUID  # the offer's
    attribution_window_s: int
    currency: str  # the offer's: revenue and payout are in it
    commission: CommissionRules
    caps: Caps
    fraud_policy: FraudPolicy


_CLICKS = """
select c.click_id, c.clicked_at, c.org_id, c.offer_id, c.affiliate_id, c.link_id, host(c.ip) as ip,
       c.user_agent, rtrim(c.country) as country,
       o.advertiser_id, o.attribution_window_s, o.currency, o.commission::text as commission,
       o.caps::text as caps, o.fraud_policy::text as fraud_policy, o.revenue_minor, o.payout_minor,
       oa.payout_minor as affiliate_payout_minor
from unnest($1::text[], $2::timestamptz[]) as k (click_id, clicked_at)
join clicks c on c.click_id = k.click_id and c.clicked_at = k.clicked_at
join offers o on o.org_id = c.org_id and o.id = c.offer_id
left join offer_affiliates oa on oa.offer_id = c.offer_id and oa.affiliate_id = c.affiliate_id
"""


def offer_rules(row) -> CommissionRules:
    """The offer's commission rules; without any, its flat revenue and payout (with the
    affiliate's payout from its offer approval, when set, as an override)."""
    if row["commission"] is not None:
        return _rules_decoder.decode(row["commission"])
    payout = row["affiliate_payout_minor"] if row["affiliate_payout_minor"] is not None else row["payout_minor"]
    return CommissionRules(goals=(GoalRule(goal=None, revenue=Flat(row["revenue_minor"]), payout=Flat(payout)),))


async def load_clicks(conn: asyncpg.Connection, click_ids: Iterable[str]) -> dict[str, ClickFacts]:
    """The stored clicks among ``click_ids`` (ids that are not ours are skipped)."""
    ids = sorted({c for c in click_ids if c and is_click_id(c)})
    if not ids:
        return {}
    rows = await conn.fetch(_CLICKS, ids, [at_ms(click_id_time_ms(c)) for c in ids])
    return {
        r["click_id"]: ClickFacts(
            click_id=r["click_id"], clicked_at=r["clicked_at"], org_id=r["org_id"], offer_id=r["offer_id"],
            affiliate_id=r["affiliate_id"], link_id=r["link_id"], ip=r["ip"], user_agent=r["user_agent"],
            country=r["country"], advertiser_id=r["advertiser_id"], attribution_window_s=r["attribution_window_s"],
            currency=r["currency"].strip(), commission=offer_rules(r), caps=_caps_decoder.decode(r["caps"]),
            fraud_policy=_policy_decoder.decode(r["fraud_policy"]),
        )
        for r in rows
    }


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
    postback_id, received_at, cap_counted)
values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22,
        $23::text::jsonb, $24::inet, $25, $26, $27, $28, $29, $30)
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


# -- waits ------------------------------------------------------------------------------

async def take_due_waits(conn: asyncpg.Connection, now: dt.datetime, limit: int) -> list[PostbackRecord]:
    """Remove and return up to ``limit`` waits due at ``now`` (oldest postback first);
    locked rows (another consumer has them) are skipped. In the caller's transaction: a
    rollback puts them back."""
    rows = await conn.fetch(
        "delete from conversion_waits w using ("
        "  select org_id, postback_id from conversion_waits where next_try_at <= $1"
        "  order by received_at, postback_id limit $2 for update skip locked) as due"
        " where w.org_id = due.org_id and w.postback_id = due.postback_id returning w.record, w.received_at",
        now, limit,
    )
    return [postback_record_decoder.decode(r["record"]) for r in sorted(rows, key=lambda r: r["received_at"])]


async def waiting_keys(conn: asyncpg.Connection, keys: Iterable[DedupeKey]) -> set[DedupeKey]:
    """Which of ``keys`` have an earlier postback still waiting (order is kept per key)."""
    keys = sorted(set(keys))
    if not keys:
        return set()
    rows = await conn.fetch(
        "select distinct org_id, advertiser_id, external_id, goal_key from conversion_waits"
        " where (org_id, advertiser_id, external_id, goal_key) in"
        " (select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[]))",
        [k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys], [k[3] for k in keys],
    )
    return {(r[0], r[1], r[2], r[3]) for r in rows}


class Wait(msgspec.Struct, frozen=True):
    record: PostbackRecord
    next_try_at: dt.datetime
    give_up_at: dt.datetime


async def insert_waits(conn: asyncpg.Connection, waits: Sequence[Wait]) -> None:
    if waits:
        await conn.executemany(
            "insert into conversion_waits (org_id, postback_id, advertiser_id, external_id, goal_key, click_id,"
            " record, received_at, next_try_at, give_up_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            " on conflict (org_id, postback_id) do nothing",
            [(uuid.UUID(w.record.org_id), w.record.postback_id, uuid.UUID(w.record.advertiser_id),
              w.record.external_id, w.record.goal or "", w.record.click_id, _record_encoder.encode(w.record),
              at_ms(w.record.ts_ms), w.next_try_at, w.give_up_at) for w in waits],
        )

