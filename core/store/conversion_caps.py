"""Conversion caps and monthly approvals (``conversion_counters``), exact under concurrency.

Counters exist per offer (``affiliate_id`` = ``NIL``, the offer-wide row) and per
affiliate on the offer, per UTC day and month. Two things are counted there:

- **Places under caps** (``conversions``, ``payout_minor``): a conversion counted at
  creation (pending or approved, within every limit) holds one place and its payout in
  each counter its offer's caps name; it gives them back when it leaves pending/approved
  (``release``). Only counters that some limit of the offer's caps needs are written.
- **Approvals** (``approved``) of an affiliate on an offer in a month, for commission
  tiers: +1 on approval, −1 on reversal.

``claim`` locks the counters of one conversion (all of them, created if missing, in key
order), checks every limit, and counts the conversion only when it fits all of them:
two transactions claiming the same counters serialize on the row locks, so a cap of
100 admits exactly 100 however many claims race (``tests/workers/test_conversion_caps``).
Callers claim in (organization, offer, affiliate) order within a batch; a deadlock with
another consumer is still possible across offers and is retried by the worker.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
import msgspec

from core.caps import CapLimits, Caps

NIL = uuid.UUID(int=0)


class CapClaim(msgspec.Struct, frozen=True):
    org_id: uuid.UUID
    offer_id: uuid.UUID
    affiliate_id: uuid.UUID
    at: dt.datetime  # the conversion's time: its UTC day and month
    payout_minor: int


class CapResult(msgspec.Struct, frozen=True):
    within: bool
    reached: list[str]  # limits this claim filled, e.g. "offer.daily_conversions"


def _periods(at: dt.datetime) -> dict[str, dt.date]:
    day = at.astimezone(dt.timezone.utc).date()
    return {"day": day, "month": day.replace(day=1)}


def _limits(caps: Caps, affiliate_id: uuid.UUID) -> list[tuple[str, uuid.UUID, CapLimits]]:
    return [("offer", NIL, caps.offer), ("affiliate", affiliate_id, caps.for_affiliate(str(affiliate_id)))]


def _checks(caps: Caps, claim: CapClaim) -> list[tuple[str, uuid.UUID, str, dt.date, str, int]]:
    """(scope, affiliate row, period, period start, counter, limit) of every conversion or
    payout limit that applies to ``claim``."""
    periods = _periods(claim.at)
    checks = []
    for scope, affiliate, limits in _limits(caps, claim.affiliate_id):
        for period, prefix in (("day", "daily"), ("month", "monthly")):
            for counter in ("conversions", "payout_minor"):
                limit = getattr(limits, f"{prefix}_{counter}")
                if limit is not None:
                    checks.append((f"{scope}.{prefix}_{counter}", affiliate, period, periods[period], counter, limit))
    return checks


def has_conversion_caps(caps: Caps) -> bool:
    for limits in (caps.offer, caps.per_affiliate, *caps.affiliate_overrides.values()):
        if any(getattr(limits, f"{p}_{c}") is not None
               for p in ("daily", "monthly") for c in ("conversions", "payout_minor")):
            return True
    return False


_ENSURE = """
insert into conversion_counters (org_id, offer_id, affiliate_id, period, period_start)
select $1::uuid, $2::uuid, a, p, s from unnest($3::uuid[], $4::text[], $5::date[]) as t (a, p, s)
order by 1, 2, 3, 4, 5
on conflict do nothing
"""
_LOCK = """
select affiliate_id, period, period_start, conversions, payout_minor from conversion_counters
where org_id = $1 and offer_id = $2
  and (affiliate_id, period, period_start) in (select * from unnest($3::uuid[], $4::text[], $5::date[]))
order by affiliate_id, period, period_start
for update
"""
_ADD = """
update conversion_counters k set conversions = k.conversions + $6, payout_minor = k.payout_minor + $7
from unnest($3::uuid[], $4::text[], $5::date[]) as t (a, p, s)
where k.org_id = $1 and k.offer_id = $2 and k.affiliate_id = t.a and k.period = t.p and k.period_start = t.s
"""


async def claim(conn: asyncpg.Connection, claim: CapClaim, caps: Caps, *, force: bool = False) -> CapResult:
    """Count ``claim`` against every limit of ``caps`` if it fits them all (or ``force``)."""
    checks = _checks(caps, claim)
    if not checks:
        return CapResult(within=True, reached=[])
    rows = sorted({(c[1], c[2], c[3]) for c in checks})
    args = (claim.org_id, claim.offer_id, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    await conn.execute(_ENSURE, *args)
    current = {(r["affiliate_id"], r["period"], r["period_start"]): r for r in await conn.fetch(_LOCK, *args)}
    adds = {"conversions": 1, "payout_minor": claim.payout_minor}
    reached = []
    for name, affiliate, period, start, counter, limit in checks:
        after = current[(affiliate, period, start)][counter] + adds[counter]
        if after > limit and not force:
            return CapResult(within=False, reached=[])
        if after >= limit:
            reached.append(name)
    await conn.execute(_ADD, *args, 1, claim.payout_minor)
    return CapResult(within=True, reached=reached)


async def release(conn: asyncpg.Connection, claim: CapClaim, caps: Caps) -> None:
    """Give back the place ``claim`` took (never below zero: caps may have changed since)."""
    rows = sorted({(c[1], c[2], c[3]) for c in _checks(caps, claim)})
    if rows:
        await conn.execute(
            "update conversion_counters k set conversions = greatest(0, k.conversions - 1),"
            " payout_minor = greatest(0, k.payout_minor - $6)"
            " from unnest($3::uuid[], $4::text[], $5::date[]) as t (a, p, s)"
            " where k.org_id = $1 and k.offer_id = $2 and k.affiliate_id = t.a and k.period = t.p"
            " and k.period_start = t.s",
            claim.org_id, claim.offer_id, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
            claim.payout_minor,
        )


async def approved_this_month(
    conn: asyncpg.Connection, org_id: uuid.UUID, offer_id: uuid.UUID, affiliate_id: uuid.UUID, at: dt.datetime,
) -> int:
    return await conn.fetchval(
        "select coalesce(max(approved), 0) from conversion_counters where org_id = $1 and offer_id = $2"
        " and affiliate_id = $3 and period = 'month' and period_start = $4",
        org_id, offer_id, affiliate_id, _periods(at)["month"],
    )


async def count_approvals(
    conn: asyncpg.Connection, deltas: dict[tuple[uuid.UUID, uuid.UUID, uuid.UUID, dt.date], int],
) -> None:
    """Add ``deltas`` ((org, offer, affiliate, month) → ±approvals) to the month rows, in key order."""
    items = sorted((k, n) for k, n in deltas.items() if n)
    if not items:
        return
    args = ([k[0] for k, _ in items], [k[1] for k, _ in items], [k[2] for k, _ in items],
            [k[3] for k, _ in items], [n for _, n in items])
    await conn.execute(
        "insert into conversion_counters (org_id, offer_id, affiliate_id, period, period_start)"
        " select o, f, a, 'month', m from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::date[], $5::bigint[])"
        " as t (o, f, a, m, n) order by 1, 2, 3, 5 on conflict do nothing", *args)
    await conn.execute(
        "update conversion_counters k set approved = greatest(0, k.approved + t.n)"
        " from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::date[], $5::bigint[]) as t (o, f, a, m, n)"
        " where k.org_id = t.o and k.offer_id = t.f and k.affiliate_id = t.a and k.period = 'month'"
        " and k.period_start = t.m", *args)


def month_of(at: dt.datetime) -> dt.date:
    return _periods(at)["month"]
