"""One batch of postbacks applied in one transaction (the caller's): what each becomes.

For each postback, oldest first (postbacks that waited for their click go first):

1. **An earlier postback of the same order is waiting** (received earlier): this one
   waits behind it, so an order's postbacks are applied in the order received.
2. **Same order again** (its dedupe key ``(organization, advertiser, external_id,
   goal)`` is stored): the same status is a no-op; another is a lifecycle move
   (``core.conversion_lifecycle``; ``rejected`` on an approved conversion reverses it);
   a move the lifecycle forbids is ignored and counted as ``invalid_transition``. An
   approval of a conversion held pending over a cap is a no-op too: the hold waits for
   an operator, so retrying the held postback cannot slip it past the cap.
3. **New**: resolved by ``core.attribution``: attributed to the click it names if that
   click belongs to the postback's organization and to an offer of its advertiser. A
   click not (yet) in Postgres makes the postback wait (``conversion_waits``) until
   ``conversion_click_wait_s`` after the later of the click's instant (its id carries
   it) and the postback, then it is stored as rejected ``unknown_click``; an id that
   cannot name a click still to come (not ours, after the sale, older than the
   organization keeps clicks) is ``unknown_click`` at once. Another organization's
   click is exactly an unknown one.
   Then, in order: outside the offer's attribution window → rejected
   ``outside_window``; fraud rules (``core.fraud_rules``; a rejecting rule rejects with
   its code, every fired rule is in ``fraud_flags``); commission (``core.commission``;
   a goal the offer has no rule for → rejected ``unknown_goal``; a percentage rule on a
   sale in another currency than the offer's → rejected ``currency_mismatch``, as
   amounts are never converted; on a postback without an amount → ``missing_amount``);
   caps (``core.store.conversion_caps``; over a cap → the offer's policy: rejected or
   pending, reason ``cap_reached``). Fraud facts are read once for the batch's new
   conversions (``core.store.fraud_signals``), earlier ones of the batch counted.

Every stored change writes a status history row; attributed conversions also write an
outbox event for the affiliate (``conversion.created`` / ``.approved`` / ...), and a
claim that fills a cap writes ``cap.reached``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from typing import Sequence

import asyncpg
import msgspec

from core.attribution import (
    ATTRIBUTED, OUTSIDE_WINDOW, UNKNOWN_CLICK, WAIT, at_ms, give_up_at, id_instant, resolve,
)
from core.caps import CAP_REACHED
from core.commission import compute_commission
from core.conversion_lifecycle import INVALID_TRANSITION, creation, is_allowed, target_of_postback
from core.errors import ValidationError
from core.fraud_rules import CidrList, ConversionSignals, evaluate
from core.models import APPROVED, PENDING, REJECTED, PostbackRecord
from core.settings import Settings
from core.store import conversion_caps
from core.store.conversion_clicks import ClickFacts, clicks_kept_from, load_clicks
from core.store.conversion_status import move_conversion, offer_caps
from core.store.conversion_waits import Place, Wait, earliest_waits, insert_waits, place_of, take_due_waits
from core.store.conversions import (
    DedupeKey, HistoryRow, NewConversion, OutboxRow, StoredConversion, conversion_event, dedupe_key, insert_conversions,
    insert_history, insert_outbox, lock_conversions, stored_of,
)
from core.store.fraud_signals import SignalInput, gather_signals
from core.store.stats_rollups import roll_up_history
from core.store.usage import record_tracked_events

log = logging.getLogger(__name__)

CURRENCY_MISMATCH = "currency_mismatch"
MISSING_AMOUNT = "missing_amount"


class Applied(msgspec.Struct, kw_only=True):
    """What one batch did; ``conversions`` counts stored changes by (status, reason)."""

    conversions: Counter = msgspec.field(default_factory=Counter)
    unchanged: int = 0  # repeats of a stored status
    invalid_transitions: int = 0
    waiting: int = 0  # postbacks (new or retried) now waiting for their click
    retried: int = 0  # waits taken up again this batch
    created: list[StoredConversion] = msgspec.field(default_factory=list)
    received: list[dt.datetime] = msgspec.field(default_factory=list)  # when the edge accepted each new one

    def merge(self, other: "Applied") -> None:
        self.conversions.update(other.conversions)
        self.created.extend(other.created)
        self.received.extend(other.received)
        for name in ("unchanged", "invalid_transitions", "waiting", "retried"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


_WAIT, _MOVE, _CREATE = "wait", "move", "create"


def signal_input(record: PostbackRecord, click: ClickFacts) -> SignalInput:
    """What the fraud rules judge a new conversion tied to ``click`` on."""
    return SignalInput(
        org_id=click.org_id, offer_id=click.offer_id, click_id=click.click_id, clicked_at=click.clicked_at,
        click_ip=click.ip, click_user_agent=click.user_agent, click_country=click.country,
        converted_at=at_ms(record.ts_ms), conversion_ip=record.ip, conversion_user_agent=record.user_agent,
        conversion_country=record.country, source=record.source, policy=click.fraud_policy)


def held_over_cap(stored: StoredConversion, target: str) -> bool:
    """A conversion held pending over a cap waits for an operator's review: the
    advertiser's approval (or a replay of the postback that was held) leaves it held;
    an operator's approval (``core.store.conversion_status``) counts it past the cap."""
    return stored.status == PENDING and stored.reason == CAP_REACHED and target == APPROVED


class _Batch:
    def __init__(self, conn: asyncpg.Connection, settings: Settings, now: dt.datetime,
                 datacenter: CidrList | None, waits_max: int):
        self.conn, self.settings, self.now, self.datacenter = conn, settings, now, datacenter
        self.waits_max = waits_max
        self.applied = Applied()
        self.history: list[HistoryRow] = []
        self.outbox: list[OutboxRow] = []
        self.waits: list[Wait] = []
        self.approvals: dict = {}
        self.approved_before: dict = {}  # (org, offer, affiliate, month) -> approvals before this batch
        self.events: Counter = Counter()  # (org, month) -> new conversions (usage)
        self.inserts: list[tuple[StoredConversion, NewConversion]] = []  # written in one round trip
        self.waiting: dict[DedupeKey, Place] = {}  # the earliest postback waiting, per order
        self._wait_s = settings.conversion_click_wait_s

    async def run(self, records: Sequence[PostbackRecord]) -> Applied:
        due = await take_due_waits(self.conn, self.now, self.waits_max) if self.waits_max else []
        self.applied.retried = len(due)
        seen: set[str] = set()
        ordered = []
        for record in [*due, *records]:
            if record.postback_id not in seen:
                seen.add(record.postback_id)
                ordered.append(record)
        keys = {dedupe_key(r) for r in ordered}
        existing = await lock_conversions(self.conn, keys)
        self.waiting = await earliest_waits(self.conn, keys)
        fresh = [r for r in ordered if dedupe_key(r) not in existing]
        clicks = await load_clicks(self.conn, (r.click_id for r in fresh))
        kept_from = await clicks_kept_from(self.conn, {dedupe_key(r)[0] for r in fresh}, self.now)

        def order(item: tuple[int, PostbackRecord]):
            # Counters are locked in (org, offer, affiliate) order; within, as received.
            position, record = item
            click = clicks.get(record.click_id or "")
            return (record.org_id, str(click.offer_id) if click else "", str(click.affiliate_id) if click else "",
                    record.ts_ms, position)

        steps = self._plan([r for _, r in sorted(enumerate(ordered), key=order)], existing, clicks, kept_from)
        tied = [(record, click) for kind, record, click, _ in steps if kind == _CREATE and click is not None]
        found = await gather_signals(self.conn, [signal_input(record, click) for record, click in tied])
        judged = {record.postback_id: signals for (record, _), signals in zip(tied, found)}
        for kind, record, click, detail in steps:
            if kind == _WAIT:
                self._wait(record, detail)
            elif kind == _MOVE:
                await self._move(existing[dedupe_key(record)], record)
            else:
                signals = judged.get(record.postback_id)
                existing[dedupe_key(record)] = await self._create(record, click, detail, signals)

        await self._flush_inserts()
        await insert_waits(self.conn, self.waits)
        await insert_history(self.conn, self.history)
        await insert_outbox(self.conn, self.outbox)
        await conversion_caps.count_approvals(self.conn, self.approvals)
        await record_tracked_events(self.conn, dict(self.events))
        await roll_up_history(self.conn, self.history)
        return self.applied

    def _plan(self, records: list[PostbackRecord], existing: dict, clicks: dict[str, ClickFacts],
              kept_from: dict) -> list[tuple[str, PostbackRecord, ClickFacts | None, object]]:
        """What each postback (in the order applied) does: (``_WAIT``, record, None,
        give_up_at), (``_MOVE``, record, None, None) or (``_CREATE``, record, click it is
        tied to or None, reason from attribution). Nothing is written yet."""
        steps: list = []
        created: set[DedupeKey] = set()
        for record in records:
            key, place = dedupe_key(record), place_of(record)
            if key in self.waiting and self.waiting[key] < place:  # an earlier one of its order waits
                steps.append((_WAIT, record, None,
                              give_up_at(id_instant(record.click_id), at_ms(record.ts_ms), self._wait_s)))
                continue
            if key in existing or key in created:
                steps.append((_MOVE, record, None, None))
                continue
            click = clicks.get(record.click_id or "")
            resolution = resolve(
                record.click_id, click, org_id=key[0], advertiser_id=key[1], received_at=at_ms(record.ts_ms),
                now=self.now, wait_s=self._wait_s, kept_from=kept_from[key[0]])
            if resolution.outcome == WAIT:
                self.waiting[key] = min(self.waiting.get(key, place), place)  # later ones of its order wait too
                steps.append((_WAIT, record, None, resolution.give_up_at))
                continue
            tied = click if resolution.outcome == ATTRIBUTED or resolution.reason == OUTSIDE_WINDOW else None
            steps.append((_CREATE, record, tied, resolution.reason))
            created.add(key)
        return steps

    def _wait(self, record: PostbackRecord, give_up_at: dt.datetime) -> None:
        retry = dt.timedelta(milliseconds=self.settings.conversion_wait_retry_ms)
        self.waits.append(Wait(record, self.now + retry, give_up_at))
        self.applied.waiting += 1

    async def _flush_inserts(self) -> None:
        await insert_conversions(self.conn, self.inserts)
        self.inserts = []

    async def _move(self, stored: StoredConversion, record: PostbackRecord) -> None:
        target = target_of_postback(stored.status, record.status)
        if target == stored.status or held_over_cap(stored, target):
            self.applied.unchanged += 1
            return
        if not is_allowed(stored.status, target):
            log.info("postback %s ignored: a %s conversion (%s) cannot become %s", record.postback_id, stored.status,
                     stored.id, target)
            self.applied.invalid_transitions += 1
            self.applied.conversions[(stored.status, INVALID_TRANSITION)] += 1
            return
        await self._flush_inserts()  # the row moved may be one this batch created
        caps = await offer_caps(self.conn, stored.org_id, stored.offer_id)
        _change, history, event = await move_conversion(
            self.conn, stored, target, reason=None, actor=record.actor, correlation_id=record.correlation_id,
            caps=caps, approvals=self.approvals)
        self.history.append(history)
        if event is not None:
            self.outbox.append(event)
        self.applied.conversions[(target, "")] += 1

    async def _create(self, record: PostbackRecord, click: ClickFacts | None, reason: str | None,
                      signals: ConversionSignals | None) -> StoredConversion:
        """Store a new conversion: tied to ``click`` (attributed, or late: ``reason``
        ``outside_window``), or without one (``unknown_click``)."""
        new = NewConversion(record=record, status=REJECTED, reason=UNKNOWN_CLICK, fraud_flags=[], click=click,
                            ip=record.ip, user_agent=record.user_agent, country=record.country)
        reached: list[str] = []
        if click is not None:
            reached = await self._judge(new, record, click, reason, signals)
        stored = stored_of(new)
        self.inserts.append((stored, new))
        first = creation(stored.status, stored.revenue_minor, stored.payout_minor)
        self.history.append(HistoryRow(
            org_id=stored.org_id, conversion_id=stored.id, from_status=None, to_status=stored.status,
            reason=stored.reason, actor=record.actor, revenue_delta_minor=first.revenue_delta_minor,
            payout_delta_minor=first.payout_delta_minor, currency=stored.currency,
            correlation_id=record.correlation_id))
        if stored.affiliate_id is not None:
            self.outbox.append(conversion_event("conversion.created", stored))
            for limit in reached:
                self.outbox.append(OutboxRow(
                    org_id=stored.org_id, event_type="cap.reached", conversion_id=stored.id,
                    affiliate_id=stored.affiliate_id, offer_id=stored.offer_id,
                    payload={"limit": limit, "offer_id": str(stored.offer_id),
                             "affiliate_id": str(stored.affiliate_id), "at": self.now.isoformat()}))
        if stored.status == APPROVED:
            key = self._month_key(click, record)
            self.approvals[key] = self.approvals.get(key, 0) + 1
        self.events[(stored.org_id, at_ms(record.ts_ms).date().replace(day=1))] += 1
        self.applied.conversions[(stored.status, stored.reason or "")] += 1
        self.applied.created.append(stored)
        self.applied.received.append(at_ms(record.ts_ms))
        return stored

    def _month_key(self, click: ClickFacts, record: PostbackRecord):
        return (click.org_id, click.offer_id, click.affiliate_id, conversion_caps.month_of(at_ms(record.ts_ms)))

    async def _judge(self, new: NewConversion, record: PostbackRecord, click: ClickFacts, reason: str | None,
                     signals: ConversionSignals) -> list[str]:
        """Fill ``new`` for a postback tied to ``click``; return the cap limits it filled."""
        received = at_ms(record.ts_ms)
        new.currency = click.currency
        if record.source == "postback":  # the visitor is the click's; a pixel's is its browser
            new.ip, new.user_agent = click.ip, click.user_agent
        new.status, new.reason = record.status, None
        if reason == OUTSIDE_WINDOW:
            new.status, new.reason = REJECTED, OUTSIDE_WINDOW
            return []

        fraud = evaluate(signals, click.fraud_policy, self.datacenter)
        new.fraud_flags = [v.code for v in (*fraud.rejected, *fraud.flagged)]
        if fraud.action == "reject":
            new.status, new.reason = REJECTED, fraud.reason
            return []

        same_currency = record.amount_minor is not None and record.currency == click.currency
        key = self._month_key(click, record)
        if key not in self.approved_before:
            self.approved_before[key] = await conversion_caps.approved_this_month(
                self.conn, click.org_id, click.offer_id, click.affiliate_id, received)
        try:
            commission = compute_commission(
                click.commission, record.goal, str(click.affiliate_id),
                record.amount_minor if same_currency else 0,
                self.approved_before[key] + self.approvals.get(key, 0))
        except ValidationError as exc:  # unknown_goal: the offer has no rule for it
            new.status, new.reason = REJECTED, exc.code
            return []
        if "percentage" in commission.rule_applied and not same_currency:  # a share of what?
            new.status, new.reason = REJECTED, MISSING_AMOUNT if record.amount_minor is None else CURRENCY_MISMATCH
            return []
        new.revenue_minor, new.payout_minor, new.rule_applied = (
            commission.revenue_minor, commission.payout_minor, commission.rule_applied)
        if fraud.action == "flag" and new.reason is None:
            new.reason = fraud.reason

        if new.status in (PENDING, APPROVED) and conversion_caps.has_conversion_caps(click.caps):
            result = await conversion_caps.claim_caps(
                self.conn, conversion_caps.CapClaim(click.org_id, click.offer_id, click.affiliate_id, received,
                                                    new.payout_minor), click.caps)
            if not result.within:
                new.status = REJECTED if click.caps.over_cap == "reject" else PENDING
                new.reason = CAP_REACHED
                return []
            new.cap_counted = True
            return result.reached
        return []


async def apply_postbacks(
    conn: asyncpg.Connection, records: Sequence[PostbackRecord], *, settings: Settings, now: dt.datetime,
    datacenter: CidrList | None = None, waits_max: int | None = None,
) -> Applied:
    """Apply ``records`` and up to ``waits_max`` waits due at ``now`` (default
    ``conversion_batch_max``; 0: none) in the caller's transaction."""
    waits_max = settings.conversion_batch_max if waits_max is None else waits_max
    return await _Batch(conn, settings, now, datacenter, waits_max).run(records)
