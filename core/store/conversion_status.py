"""Moving a stored conversion to a new status: the one place both the conversion worker
(a later postback) and the api (an operator) go through.

``move_conversion`` applies an allowed move (``core.conversion_lifecycle``) in the
caller's transaction: the row's status and reason, a status history row with the move's
earned-money deltas, the affiliate's outbox event, and the counters:

- leaving pending/approved (rejected, reversed) gives back the conversion's place under
  the offer's caps, if it held one (``cap_counted``);
- approving a conversion that was held pending over a cap (it holds no place) counts it
  past the cap: an operator's approval is the decision the ``pending`` policy asked for;
- approvals and reversals move the affiliate's monthly approvals (commission tiers).

``change_conversion_status`` is the api's entry: it locks the conversion of the
organization set for the transaction (row-level security makes another organization's
id a missing one) and raises ``NotFound`` or ``Conflict`` (``invalid_transition``).
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import msgspec

from core.caps import NO_CAPS, Caps
from core.conversion_lifecycle import move
from core.errors import NotFound
from core.models import APPROVED, PENDING, REJECTED, REVERSED
from core.store import conversion_caps
from core.store.conversions import (
    HistoryRow, OutboxRow, StoredConversion, conversion_event, insert_history, insert_outbox, lock_conversion,
    update_status,
)
from core.store.stats_rollups import roll_up_history

_caps_decoder = msgspec.json.Decoder(Caps)
_COUNTED = (PENDING, APPROVED)


class ConversionChange(msgspec.Struct, frozen=True):
    conversion_id: uuid.UUID
    from_status: str
    to_status: str
    revenue_delta_minor: int
    payout_delta_minor: int
    currency: str | None


async def move_conversion(
    conn: asyncpg.Connection, conversion: StoredConversion, target: str, *, reason: str | None, actor: str,
    correlation_id: str | None, caps: Caps, approvals: dict | None = None,
) -> tuple[ConversionChange, HistoryRow, OutboxRow | None]:
    """Apply the move and return it with its history row and outbox event, which the
    caller writes (the worker writes a batch's at once). ``approvals``: a dict the caller
    flushes with ``conversion_caps.count_approvals``; None writes them now."""
    step = move(conversion.status, target, conversion.revenue_minor, conversion.payout_minor)
    claim = None
    if conversion.offer_id is not None and conversion.affiliate_id is not None:
        claim = conversion_caps.CapClaim(conversion.org_id, conversion.offer_id, conversion.affiliate_id,
                                         conversion.received_at, conversion.payout_minor)
    counted = conversion.cap_counted
    if claim is not None:
        if target in (REJECTED, REVERSED) and counted:
            await conversion_caps.release_caps(conn, claim)
            counted = False
        elif target == APPROVED and not counted and conversion_caps.has_conversion_caps(caps):
            await conversion_caps.claim_caps(conn, claim, caps, force=True)
            counted = True
        delta = 1 if target == APPROVED else -1 if step.from_status == APPROVED else 0
        if delta:
            key = (conversion.org_id, conversion.offer_id, conversion.affiliate_id,
                   conversion_caps.month_of(conversion.received_at))
            if approvals is None:
                await conversion_caps.count_approvals(conn, {key: delta})
            else:
                approvals[key] = approvals.get(key, 0) + delta
    await update_status(conn, conversion, target, reason, counted)
    history = HistoryRow(
        org_id=conversion.org_id, conversion_id=conversion.id, from_status=step.from_status, to_status=target,
        reason=reason, actor=actor, revenue_delta_minor=step.revenue_delta_minor,
        payout_delta_minor=step.payout_delta_minor, currency=conversion.currency, correlation_id=correlation_id,
    )
    event = conversion_event(f"conversion.{target}", conversion) if conversion.affiliate_id else None
    change = ConversionChange(conversion.id, step.from_status, target, step.revenue_delta_minor,
                              step.payout_delta_minor, conversion.currency)
    return change, history, event


async def offer_caps(conn: asyncpg.Connection, org_id: uuid.UUID, offer_id: uuid.UUID | None) -> Caps:
    if offer_id is None:
        return NO_CAPS
    raw = await conn.fetchval("select caps::text from offers where org_id = $1 and id = $2", org_id, offer_id)
    return _caps_decoder.decode(raw) if raw else NO_CAPS


async def change_conversion_status(
    conn: asyncpg.Connection, *, org_id: uuid.UUID, conversion_id: uuid.UUID, to_status: str, reason: str | None,
    actor: str, correlation_id: str | None,
) -> ConversionChange:
    """An operator's move, in the caller's (tenant) transaction."""
    conversion = await lock_conversion(conn, org_id, conversion_id)
    if conversion is None:
        raise NotFound("not_found", "no such conversion")
    caps = await offer_caps(conn, org_id, conversion.offer_id)
    change, history, event = await move_conversion(
        conn, conversion, to_status, reason=reason, actor=actor, correlation_id=correlation_id, caps=caps)
    await insert_history(conn, [history])
    if event is not None:
        await insert_outbox(conn, [event])
    await roll_up_history(conn, [history])
    return change


