"""Conversion caps and monthly approvals (``conversion_counters``), exact under concurrency.

Counters exist per offer (``affiliate_id`` = ``NIL``, the offer-wide row) and per
affiliate on the offer, per UTC day and month (the day and month of the claim's ``at``).
Two things are counted there:

- **Places under caps** (``conversions``, ``payout_minor``): a conversion counted at
  creation (pending or approved, within every limit) holds one place and its payout in
  each counter a limit of its offer's caps (``core.caps``) needs; ``release_caps`` gives
  them back when it leaves pending/approved. Offers without conversion or payout limits
  cost nothing: no statement, no row.
- **Approvals** (``approved``, month rows only: commission tiers are monthly and
  nothing reads a day's) of an affiliate on an offer: +1 on approval, −1 on reversal.

``claim_caps`` runs three statements in the caller's transaction: lock all the claim's
counters, creating the missing ones, in one statement in key order (an upsert whose
conflict branch only locks); read them; then, if the claim fits every limit, add it (one
update). Two transactions claiming the same counters serialize on the row locks, so a
cap of 100 admits exactly 100 however many claims race
(``tests/workers/test_conversion_caps.py``: 200 concurrent claims, 200 connections).

Deadlocks: a claim takes its locks in key order (affiliate, period, period start) and a
batch's claims sorted by (organization, offer, affiliate) extend that order, so two
batches cannot deadlock (tested), except when their claims of one offer fall on
different days (a batch across midnight UTC: a later day's row sorts after an earlier
claim's month row). Postgres detects that cycle and aborts one transaction; the worker
retries it.

``release_caps`` and ``count_approvals`` also lock in key order within a call; the
order across calls is the caller's (a deadlock that leaves is retried by the worker).
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import msgspec

from core.caps import CapLimits, Caps

NIL = uuid.UUID(int=0)  # affiliate_id of the offer-wide counters

_PERIODS = (("day", "daily"), ("month", "monthly"))
_COUNTERS = ("conversions", "payout_minor")


class CapClaim(msgspec.Struct, frozen=True):
    """One conversion's place under its offer's caps: ``at`` (timezone-aware) picks the
    UTC day and month counted; ``payout_minor`` is in the offer's currency."""

    org_id: uuid.UUID
    offer_id: uuid.UUID
    affiliate_id: uuid.UUID
    at: dt.datetime
    payout_minor: int


class CapResult(msgspec.Struct, frozen=True):
    """``within``: the claim was counted. ``reached``: the limits this claim took from
    below to at or past their value, named ``<offer|affiliate>.<limit field>`` (e.g.
    ``"offer.daily_conversions"``, ``"affiliate.monthly_payout_minor"``), one
    ``cap.reached`` event each."""

    within: bool
    reached: list[str]


class _Check(msgspec.Struct, frozen=True):
    name: str  # "offer.daily_conversions"
    row: tuple[uuid.UUID, str, dt.date]  # (affiliate_id, period, period_start)
    counter: str  # "conversions" | "payout_minor"
    limit: int


def day_of(at: dt.datetime) -> dt.date:
    return at.astimezone(dt.timezone.utc).date()


def month_of(at: dt.datetime) -> dt.date:
    return day_of(at).replace(day=1)


def has_conversion_caps(caps: Caps) -> bool:
    """Whether any limit of ``caps`` (offer-wide, per affiliate or an override) bounds
    conversions or payout; click limits do not count."""
    return any(
        getattr(limits, f"{prefix}_{counter}") is not None
        for limits in (caps.offer, caps.per_affiliate, *caps.affiliate_overrides.values())
        for _, prefix in _PERIODS for counter in _COUNTERS
    )


def _checks(caps: Caps, claim: CapClaim) -> list[_Check]:
    starts = {"day": day_of(claim.at), "month": month_of(claim.at)}
    scopes: tuple[tuple[str, uuid.UUID, CapLimits], ...] = (
        ("offer", NIL, caps.offer),
        ("affiliate", claim.affiliate_id, caps.for_affiliate(str(claim.affiliate_id))),
    )
    return [
        _Check(f"{scope}.{prefix}_{counter}", (affiliate, period, starts[period]), counter, limit)
        for scope, affiliate, limits in scopes
        for period, prefix in _PERIODS
        for counter in _COUNTERS
        if (limit := getattr(limits, f"{prefix}_{counter}")) is not None
    ]


def _row_arrays(rows: list[tuple[uuid.UUID, str, dt.date]]) -> tuple[list, list, list]:
    return [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]


# Creates the missing counters and locks the existing ones in one pass, in key order: an
# ON CONFLICT DO UPDATE locks the row it meets even when its WHERE leaves it unchanged
# (no new row version). Creating first and locking in a second statement would hold the
# new rows before the older ones, out of order, and deadlock against a claim that
# locked an older one first.
_LOCK = """
insert into conversion_counters as k (org_id, offer_id, affiliate_id, period, period_start)
select $1::uuid, $2::uuid, t.a, t.p, t.s
from unnest($3::uuid[], $4::text[], $5::date[]) as t (a, p, s)
order by t.a, t.p, t.s
on conflict (org_id, offer_id, affiliate_id, period, period_start) do update set conversions = k.conversions
where false
"""
# Locked by this transaction, so this statement's snapshot sees their latest values.
_READ = """
select affiliate_id, period, period_start, conversions, payout_minor
from conversion_counters
where org_id = $1 and offer_id = $2
  and (affiliate_id, period, period_start) in (select * from unnest($3::uuid[], $4::text[], $5::date[]))
"""
_ADD = """
update conversion_counters k
set conversions = k.conversions + 1, payout_minor = k.payout_minor + $6
from unnest($3::uuid[], $4::text[], $5::date[]) as t (a, p, s)
where k.org_id = $1 and k.offer_id = $2 and k.affiliate_id = t.a and k.period = t.p and k.period_start = t.s
"""


async def claim_caps(conn: asyncpg.Connection, claim: CapClaim, caps: Caps, *, force: bool = False) -> CapResult:
    """Count ``claim`` in every counter a limit of ``caps`` needs if it fits them all, in
    the caller's transaction (its row locks are held until that commits).

    Fits: one more conversion stays at or under each conversion limit, and the payout
    added stays at or under each payout limit. Over any → nothing counted,
    ``within=False``. ``force`` counts it over the limits too (an operator approving a
    conversion held pending over a cap). No conversion or payout limit → ``within=True``
    without a round trip.
    """
    checks = _checks(caps, claim)
    if not checks:
        return CapResult(within=True, reached=[])
    args = (claim.org_id, claim.offer_id, *_row_arrays(sorted({c.row for c in checks})))
    await conn.execute(_LOCK, *args)
    current = {(r["affiliate_id"], r["period"], r["period_start"]): r for r in await conn.fetch(_READ, *args)}
    added = {"conversions": 1, "payout_minor": claim.payout_minor}
    reached = []
    for check in checks:
        before = current[check.row][check.counter]
        after = before + added[check.counter]
        if after > check.limit and not force:
            return CapResult(within=False, reached=[])
        if before < check.limit <= after:
            reached.append(check.name)
    await conn.execute(_ADD, *args, claim.payout_minor)
    return CapResult(within=True, reached=reached)


_RELEASE = """
with locked as (
    select affiliate_id, period, period_start
    from conversion_counters
    where org_id = $1 and offer_id = $2 and affiliate_id = any($3::uuid[])
      and ((period = 'day' and period_start = $4) or (period = 'month' and period_start = $5))
    order by affiliate_id, period, period_start
    for update
)
update conversion_counters k
set conversions = greatest(0, k.conversions - 1), payout_minor = greatest(0, k.payout_minor - $6)
from locked l
where k.org_id = $1 and k.offer_id = $2
  and k.affiliate_id = l.affiliate_id and k.period = l.period and k.period_start = l.period_start
"""


async def release_caps(conn: asyncpg.Connection, claim: CapClaim) -> None:
    """Give back the place a counted ``claim`` holds (its conversion left pending/approved):
    one conversion and its payout off each of its counters that exists, never below
    zero. Whatever the offer's caps are now: a limit removed since keeps its counter
    right should it come back. The caller calls this only for a conversion that was
    counted (``conversions.cap_counted``), and at most once for it."""
    await conn.execute(
        _RELEASE, claim.org_id, claim.offer_id, [NIL, claim.affiliate_id], day_of(claim.at), month_of(claim.at),
        claim.payout_minor,
    )


async def approved_this_month(
    conn: asyncpg.Connection, org_id: uuid.UUID, offer_id: uuid.UUID, affiliate_id: uuid.UUID, at: dt.datetime,
) -> int:
    """The affiliate's approvals on the offer in ``at``'s UTC month (commission tiers)."""
    return await conn.fetchval(
        "select coalesce(max(approved), 0) from conversion_counters where org_id = $1 and offer_id = $2"
        " and affiliate_id = $3 and period = 'month' and period_start = $4",
        org_id, offer_id, affiliate_id, month_of(at),
    )


_APPROVALS_INPUT = "unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::date[], $5::bigint[]) as t (o, f, a, m, n)"
_LOCK_MONTHS = f"""
insert into conversion_counters as k (org_id, offer_id, affiliate_id, period, period_start)
select t.o, t.f, t.a, 'month', t.m from {_APPROVALS_INPUT}
order by t.o, t.f, t.a, t.m
on conflict (org_id, offer_id, affiliate_id, period, period_start) do update set approved = k.approved
where false
"""
_ADD_APPROVALS = f"""
update conversion_counters k
set approved = greatest(0, k.approved + t.n)
from {_APPROVALS_INPUT}
where k.org_id = t.o and k.offer_id = t.f and k.affiliate_id = t.a and k.period = 'month' and k.period_start = t.m
"""


async def count_approvals(
    conn: asyncpg.Connection, deltas: dict[tuple[uuid.UUID, uuid.UUID, uuid.UUID, dt.date], int],
) -> None:
    """Add ``deltas`` ((organization, offer, affiliate, first day of the month) → ±approvals,
    a batch's at once) to the month rows, in key order; never below zero."""
    items = sorted((key, n) for key, n in deltas.items() if n)
    if not items:
        return
    args = ([k[0] for k, _ in items], [k[1] for k, _ in items], [k[2] for k, _ in items],
            [k[3] for k, _ in items], [n for _, n in items])
    await conn.execute(_LOCK_MONTHS, *args)
    await conn.execute(_ADD_APPROVALS, *args)


async def count_approval(
    conn: asyncpg.Connection, org_id: uuid.UUID, offer_id: uuid.UUID, affiliate_id: uuid.UUID, at: dt.datetime,
    delta: int,
) -> None:
    """Add ``delta`` (+1 approved, −1 reversed) to the affiliate's approvals on the offer
    in ``at``'s UTC month."""
    await count_approvals(conn, {(org_id, offer_id, affiliate_id, month_of(at)): delta})
