"""The plans of the service catalogue, as data, and the arithmetic of their limits.

``organizations.plan`` names one of ``PLANS``. A plan bounds two things:

- **tracked events a month** (today a tracked event is a click row actually inserted;
  conversions will count through the same seam, ``core.store.usage.record_tracked_events``).
  The limit is soft: events past it are still recorded, and counted again as
  ``overage_events`` for overage billing. The edge never looks at usage, so a visitor's
  click keeps redirecting however far over its limit the organization is: a click never
  breaks because of billing.
- **active offers**: hard. Making one more offer active past the limit (create with
  status active, or a status change to active) is refused with ``PlanLimitReached``;
  pausing or archiving another offer, or upgrading, makes room.

``None`` means unlimited. Months are calendar months in UTC, named by their first day.
"""

from __future__ import annotations

import datetime as dt

import msgspec

from core.errors import AfftokError


class Plan(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    tracked_events_per_month: int | None  # None: unlimited
    active_offers_max: int | None  # None: unlimited


STARTER = Plan(name="starter", tracked_events_per_month=10_000, active_offers_max=5)
PROFESSIONAL = Plan(name="professional", tracked_events_per_month=100_000, active_offers_max=None)
ENTERPRISE = Plan(name="enterprise", tracked_events_per_month=None, active_offers_max=None)

# In upgrade order; the names match the check constraint on organizations.plan.
PLANS: dict[str, Plan] = {p.name: p for p in (STARTER, PROFESSIONAL, ENTERPRISE)}


class PlanLimitReached(AfftokError):
    """A change the organization's plan does not allow (answered 402 by the api)."""

    code = "plan_limit_reached"


def plan_named(name: str) -> Plan:
    try:
        return PLANS[name]
    except KeyError:
        raise ValueError(f"unknown plan {name!r}; known: {', '.join(PLANS)}") from None


def next_plan_with_room_for_offers(plan: Plan) -> Plan | None:
    """The cheapest plan above ``plan`` with more active offers, if any."""
    order = list(PLANS.values())
    for candidate in order[order.index(plan) + 1:]:
        if candidate.active_offers_max is None or (
            plan.active_offers_max is not None and candidate.active_offers_max > plan.active_offers_max
        ):
            return candidate
    return None


def check_active_offers(plan: Plan, active_offers: int) -> None:
    """Raise ``PlanLimitReached`` if ``active_offers`` (the new one included) exceeds the plan."""
    limit = plan.active_offers_max
    if limit is None or active_offers <= limit:
        return
    upgrade = next_plan_with_room_for_offers(plan)
    way_up = f", or upgrade to the {upgrade.name} plan" if upgrade else ""
    raise PlanLimitReached(
        message=f"the {plan.name} plan allows {limit} active offers and this organization has"
        f" {active_offers - 1} already: pause or archive one of them first{way_up}"
    )


def overage_delta(events_before: int, new_events: int, limit: int | None) -> int:
    """How many of ``new_events``, added to a month holding ``events_before``, are over ``limit``."""
    if limit is None:
        return 0
    return max(0, events_before + new_events - limit) - max(0, events_before - limit)


def usage_month(at: dt.datetime) -> dt.date:
    """The month ``at`` falls in (UTC), named by its first day."""
    if at.tzinfo is None:
        raise ValueError("usage_month needs an aware datetime")
    utc = at.astimezone(dt.timezone.utc)
    return dt.date(utc.year, utc.month, 1)


def months_back(month: dt.date, count: int) -> list[dt.date]:
    """``month`` and the ``count - 1`` months before it, newest first."""
    out, year, m = [], month.year, month.month
    for _ in range(count):
        out.append(dt.date(year, m, 1))
        year, m = (year - 1, 12) if m == 1 else (year, m - 1)
    return out
