"""Revenue and payout of one conversion, from an offer's commission rules.

Revenue is what the advertiser pays the network; payout is what the affiliate earns.
Both are integer minor units of the offer's one currency. ``compute_commission`` does
not convert currencies: the sale amount must already be in the offer's currency, and a
conversion reported in another currency is the caller's to reject or convert first.

Rule kinds:

- ``Flat``: a fixed amount per conversion (CPA), whatever the sale amount.
- ``Percentage``: basis points of the sale amount (12.5 % is 1250 bps), rounded to the
  minor unit half to even (banker's rounding): 2.5 → 2, 3.5 → 4. At most 100 %.
- ``Tiered``: a flat or percentage rule chosen by the number of conversions of the
  affiliate already approved this month, *before* this one is counted: the tier with
  the greatest ``min_conversions`` not above that count. The first tier starts at 0, so
  every count has a tier; tiers are strictly increasing.

Which rule applies, most specific first:

- revenue: the offer's rule for the conversion's goal, else the offer's default goal;
- payout: the affiliate's override for the goal, the offer's rule for the goal, the
  affiliate's override for the default goal, the offer's default goal. A goal-specific
  rule beats a default-goal rule at every level, and at the same goal an override beats
  the offer. An override replaces only the payout; revenue is the advertiser's deal.

The default goal is ``None`` (a postback without ``goal``). Payout above revenue is
allowed: networks run negative-margin promotions on purpose.
"""

from __future__ import annotations

from decimal import Context, Decimal
from typing import Union

import msgspec

from core.catalog_rules import MONEY_MAX_MINOR
from core.errors import ValidationError
from core.money import round_half_even_minor

MAX_PERCENTAGE_BPS = 100_00
DEFAULT_GOAL = None
GOAL_MAX_LENGTH = 100

_EXACT = Context(prec=60)  # wide enough that no sale × bps product is ever rounded early


def _invalid(message: str) -> ValidationError:
    return ValidationError("invalid_commission_rule", message)


def _check_count(value: object, what: str) -> None:
    if type(value) is not int or value < 0:
        raise _invalid(f"{what} must be a non-negative integer, got {value!r}")


class Flat(msgspec.Struct, frozen=True, tag="flat", forbid_unknown_fields=True):
    amount_minor: int

    def __post_init__(self) -> None:
        if type(self.amount_minor) is not int or not 0 <= self.amount_minor <= MONEY_MAX_MINOR:
            raise _invalid(f"flat amount_minor must be an integer between 0 and {MONEY_MAX_MINOR}")

    def amount(self, sale_amount_minor: int) -> int:
        return self.amount_minor


class Percentage(msgspec.Struct, frozen=True, tag="percentage", forbid_unknown_fields=True):
    bps: int

    def __post_init__(self) -> None:
        if type(self.bps) is not int or not 0 <= self.bps <= MAX_PERCENTAGE_BPS:
            raise _invalid(f"percentage bps must be an integer between 0 and {MAX_PERCENTAGE_BPS}")

    def amount(self, sale_amount_minor: int) -> int:
        return percentage_of(sale_amount_minor, self.bps)


SimpleRule = Union[Flat, Percentage]


class Tier(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    min_conversions: int
    rule: SimpleRule

    def __post_init__(self) -> None:
        _check_count(self.min_conversions, "tier min_conversions")
        if not isinstance(self.rule, (Flat, Percentage)):
            raise _invalid("a tier's rule must be flat or percentage")


class Tiered(msgspec.Struct, frozen=True, tag="tiered", forbid_unknown_fields=True):
    tiers: tuple[Tier, ...]

    def __post_init__(self) -> None:
        if not self.tiers:
            raise _invalid("tiered rule needs at least one tier")
        if self.tiers[0].min_conversions != 0:
            raise _invalid("the first tier must start at 0 conversions")
        for before, after in zip(self.tiers, self.tiers[1:]):
            if after.min_conversions <= before.min_conversions:
                raise _invalid(
                    f"tiers must be strictly increasing: {after.min_conversions} after {before.min_conversions}"
                )

    def tier_for(self, approved_before: int) -> Tier:
        chosen = self.tiers[0]
        for tier in self.tiers[1:]:
            if tier.min_conversions > approved_before:
                break
            chosen = tier
        return chosen


Rule = Union[Flat, Percentage, Tiered]


def _check_rule(rule: object, what: str) -> None:
    if not isinstance(rule, (Flat, Percentage, Tiered)):
        raise _invalid(f"{what} must be a flat, percentage or tiered rule")


def _check_goal(goal: object) -> None:
    if goal is None:
        return
    if not isinstance(goal, str) or not goal.strip() or len(goal) > GOAL_MAX_LENGTH:
        raise _invalid(f"goal must be null (the default goal) or a name of 1 to {GOAL_MAX_LENGTH} characters")


class GoalRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The offer's revenue and payout for one goal; ``goal=None`` is the default goal."""

    revenue: Rule
    payout: Rule
    goal: str | None = DEFAULT_GOAL

    def __post_init__(self) -> None:
        _check_goal(self.goal)
        _check_rule(self.revenue, "revenue")
        _check_rule(self.payout, "payout")


class AffiliateOverride(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A payout that replaces the offer's for one affiliate and goal."""

    affiliate_id: str
    payout: Rule
    goal: str | None = DEFAULT_GOAL

    def __post_init__(self) -> None:
        if not isinstance(self.affiliate_id, str) or not self.affiliate_id:
            raise _invalid("override affiliate_id must not be empty")
        _check_goal(self.goal)
        _check_rule(self.payout, "override payout")


class CommissionRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """All commission rules of one offer; at most one per goal and per (affiliate, goal)."""

    goals: tuple[GoalRule, ...]
    overrides: tuple[AffiliateOverride, ...] = ()

    def __post_init__(self) -> None:
        if not self.goals:
            raise _invalid("an offer needs at least one goal rule")
        goals = [rule.goal for rule in self.goals]
        if len(set(goals)) != len(goals):
            raise _invalid("each goal may have only one rule")
        keys = [(o.affiliate_id, o.goal) for o in self.overrides]
        if len(set(keys)) != len(keys):
            raise _invalid("each affiliate and goal may have only one override")


class Commission(msgspec.Struct, frozen=True):
    revenue_minor: int
    payout_minor: int
    rule_applied: str  # e.g. "revenue=offer/sale/flat payout=override/default/tier>=10/percentage"


def percentage_of(sale_amount_minor: int, bps: int) -> int:
    """``bps`` basis points of an amount, rounded half to even to the minor unit."""
    return round_half_even_minor(Decimal(sale_amount_minor * bps).scaleb(-4, _EXACT))  # ÷ 10 000 bps, exact


def compute_commission(
    rules: CommissionRules,
    goal: str | None,
    affiliate_id: str,
    sale_amount_minor: int,
    approved_this_month: int,
) -> Commission:
    """Revenue and payout of one conversion; ``approved_this_month`` excludes this one.

    Raises ``ValidationError`` (``unknown_goal``) when the offer has no rule for the goal
    and no default goal, and for a negative or non-integer amount or count.
    """
    _check_money_input(sale_amount_minor, "sale_amount_minor")
    _check_money_input(approved_this_month, "approved_this_month")
    by_goal = {rule.goal: rule for rule in rules.goals}
    overrides = {o.goal: o for o in rules.overrides if o.affiliate_id == affiliate_id}

    offer_goal = goal if goal in by_goal else DEFAULT_GOAL
    offer_rule = by_goal.get(offer_goal)
    if offer_rule is None:
        raise ValidationError("unknown_goal", f"the offer has no rule for goal {goal!r} and no default goal")
    source, payout_goal, payout_rule = _payout_source(goal, by_goal, overrides)

    revenue_minor, revenue_how = _apply(offer_rule.revenue, sale_amount_minor, approved_this_month)
    payout_minor, payout_how = _apply(payout_rule, sale_amount_minor, approved_this_month)
    return Commission(
        revenue_minor=revenue_minor,
        payout_minor=payout_minor,
        rule_applied=(
            f"revenue=offer/{_goal_name(offer_goal)}/{revenue_how} "
            f"payout={source}/{_goal_name(payout_goal)}/{payout_how}"
        ),
    )


def _payout_source(
    goal: str | None, by_goal: dict[str | None, GoalRule], overrides: dict[str | None, AffiliateOverride]
) -> tuple[str, str | None, Rule]:
    """(source, goal, rule) of the payout, following the precedence in the module doc.

    The caller has checked that the goal or the default goal has an offer rule.
    """
    for candidate in (goal, DEFAULT_GOAL) if goal is not None else (DEFAULT_GOAL,):
        if candidate in overrides:
            return "override", candidate, overrides[candidate].payout
        if candidate in by_goal:
            return "offer", candidate, by_goal[candidate].payout
    raise AssertionError("unreachable: compute_commission found an offer rule")


def _apply(rule: Rule, sale_amount_minor: int, approved_before: int) -> tuple[int, str]:
    if isinstance(rule, Tiered):
        tier = rule.tier_for(approved_before)
        return tier.rule.amount(sale_amount_minor), f"tier>={tier.min_conversions}/{_kind(tier.rule)}"
    return rule.amount(sale_amount_minor), _kind(rule)


def _kind(rule: Flat | Percentage) -> str:
    return "flat" if isinstance(rule, Flat) else "percentage"


def _goal_name(goal: str | None) -> str:
    return "default" if goal is None else goal


def _check_money_input(value: object, what: str) -> None:
    if type(value) is not int or value < 0:
        raise ValidationError("invalid_commission_input", f"{what} must be a non-negative integer, got {value!r}")
