import msgspec
import pytest

from core.commission import (
    AffiliateOverride,
    CommissionRules,
    Flat,
    GoalRule,
    Percentage,
    Tier,
    Tiered,
    compute_commission,
    percentage_of,
)
from core.errors import ValidationError

TIERED = Tiered(tiers=(
    Tier(0, Flat(100)),
    Tier(10, Flat(150)),
    Tier(50, Percentage(2000)),
))

OFFER = CommissionRules(
    goals=(
        GoalRule(revenue=Flat(500), payout=Flat(300)),
        GoalRule(goal="sale", revenue=Percentage(2000), payout=Percentage(1250)),
        GoalRule(goal="deposit", revenue=Flat(2000), payout=TIERED),
    ),
    overrides=(
        AffiliateOverride("aff-vip", goal="sale", payout=Percentage(1500)),
        AffiliateOverride("aff-vip", payout=Flat(400)),
        AffiliateOverride("aff-default-only", payout=Flat(350)),
    ),
)

# (goal, affiliate, sale_minor, approved_before, revenue, payout, rule_applied)
CASES = [
    # flat CPA ignores the sale amount, including none
    (None, "aff-1", 0, 0, 500, 300, "revenue=offer/default/flat payout=offer/default/flat"),
    (None, "aff-1", 123_456, 0, 500, 300, "revenue=offer/default/flat payout=offer/default/flat"),
    # unknown goal falls back to the default goal
    ("signup", "aff-1", 1000, 0, 500, 300, "revenue=offer/default/flat payout=offer/default/flat"),
    # percentage: 20 % revenue, 12.5 % payout
    ("sale", "aff-1", 10_000, 0, 2000, 1250, "revenue=offer/sale/percentage payout=offer/sale/percentage"),
    ("sale", "aff-1", 0, 0, 0, 0, "revenue=offer/sale/percentage payout=offer/sale/percentage"),
    # half-even: 12.5 → 12, 37.5 → 38, 0.5 → 0, 1.5 → 2
    ("sale", "aff-1", 100, 0, 20, 12, "revenue=offer/sale/percentage payout=offer/sale/percentage"),
    ("sale", "aff-1", 300, 0, 60, 38, "revenue=offer/sale/percentage payout=offer/sale/percentage"),
    ("sale", "aff-1", 4, 0, 1, 0, "revenue=offer/sale/percentage payout=offer/sale/percentage"),
    ("sale", "aff-1", 12, 0, 2, 2, "revenue=offer/sale/percentage payout=offer/sale/percentage"),
    # tiers chosen by approved conversions before this one, at and around each boundary
    ("deposit", "aff-1", 1000, 0, 2000, 100, "revenue=offer/deposit/flat payout=offer/deposit/tier>=0/flat"),
    ("deposit", "aff-1", 1000, 9, 2000, 100, "revenue=offer/deposit/flat payout=offer/deposit/tier>=0/flat"),
    ("deposit", "aff-1", 1000, 10, 2000, 150, "revenue=offer/deposit/flat payout=offer/deposit/tier>=10/flat"),
    ("deposit", "aff-1", 1000, 49, 2000, 150, "revenue=offer/deposit/flat payout=offer/deposit/tier>=10/flat"),
    ("deposit", "aff-1", 1000, 50, 2000, 200, "revenue=offer/deposit/flat payout=offer/deposit/tier>=50/percentage"),
    ("deposit", "aff-1", 1000, 10_000, 2000, 200, "revenue=offer/deposit/flat payout=offer/deposit/tier>=50/percentage"),
    # overrides replace the payout only; goal-specific beats default at each level
    ("sale", "aff-vip", 10_000, 0, 2000, 1500, "revenue=offer/sale/percentage payout=override/sale/percentage"),
    (None, "aff-vip", 10_000, 0, 500, 400, "revenue=offer/default/flat payout=override/default/flat"),
    ("deposit", "aff-vip", 0, 0, 2000, 100, "revenue=offer/deposit/flat payout=offer/deposit/tier>=0/flat"),
    ("sale", "aff-default-only", 10_000, 0, 2000, 1250, "revenue=offer/sale/percentage payout=offer/sale/percentage"),
    ("signup", "aff-default-only", 10_000, 0, 500, 350, "revenue=offer/default/flat payout=override/default/flat"),
    (None, "aff-default-only", 0, 0, 500, 350, "revenue=offer/default/flat payout=override/default/flat"),
]


@pytest.mark.parametrize(("goal", "affiliate", "sale", "before", "revenue", "payout", "applied"), CASES)
def test_commission(goal, affiliate, sale, before, revenue, payout, applied):
    commission = compute_commission(OFFER, goal, affiliate, sale, before)
    assert (commission.revenue_minor, commission.payout_minor, commission.rule_applied) == (revenue, payout, applied)


@pytest.mark.parametrize(("sale", "bps", "expected"), [
    (25, 1000, 2),     # 2.5 → 2
    (35, 1000, 4),     # 3.5 → 4
    (45, 1000, 4),     # 4.5 → 4
    (26, 1000, 3),     # 2.6 → 3
    (24, 1000, 2),     # 2.4 → 2
    (1, 5000, 0),      # 0.5 → 0
    (3, 5000, 2),      # 1.5 → 2
    (999, 10_000, 999),
    (10**15, 10_000, 10**15),
    (10**15 + 1, 5000, 5 * 10**14),  # …0.5 → even, exact far beyond float precision
    (0, 1250, 0),
])
def test_percentage_rounds_half_to_even(sale, bps, expected):
    assert percentage_of(sale, bps) == expected


def test_override_for_a_goal_the_offer_lacks_pays_the_override_and_default_revenue():
    rules = CommissionRules(
        goals=(GoalRule(revenue=Flat(500), payout=Flat(300)),),
        overrides=(AffiliateOverride("aff-1", goal="upsell", payout=Flat(90)),),
    )
    commission = compute_commission(rules, "upsell", "aff-1", 0, 0)
    assert (commission.revenue_minor, commission.payout_minor) == (500, 90)
    assert commission.rule_applied == "revenue=offer/default/flat payout=override/upsell/flat"


def test_goal_without_rule_and_without_default_is_refused():
    rules = CommissionRules(goals=(GoalRule(goal="sale", revenue=Flat(1), payout=Flat(1)),))
    with pytest.raises(ValidationError) as caught:
        compute_commission(rules, "lead", "aff-1", 0, 0)
    assert caught.value.code == "unknown_goal"
    with pytest.raises(ValidationError):
        compute_commission(rules, None, "aff-1", 0, 0)


@pytest.mark.parametrize(("sale", "before"), [(-1, 0), (0, -1), (1.5, 0), ("100", 0), (0, None), (True, 0)])
def test_bad_inputs_are_refused(sale, before):
    with pytest.raises(ValidationError) as caught:
        compute_commission(OFFER, None, "aff-1", sale, before)
    assert caught.value.code == "invalid_commission_input"


INVALID_RULES = [
    lambda: Flat(-1),
    lambda: Flat(10**16),
    lambda: Flat(1.5),
    lambda: Percentage(-1),
    lambda: Percentage(10_001),
    lambda: Percentage(12.5),
    lambda: Tiered(tiers=()),
    lambda: Tiered(tiers=(Tier(1, Flat(1)),)),
    lambda: Tiered(tiers=(Tier(0, Flat(1)), Tier(10, Flat(2)), Tier(10, Flat(3)))),
    lambda: Tiered(tiers=(Tier(0, Flat(1)), Tier(20, Flat(2)), Tier(10, Flat(3)))),
    lambda: Tier(-1, Flat(1)),
    lambda: Tier(0, TIERED),
    lambda: GoalRule(goal="", revenue=Flat(1), payout=Flat(1)),
    lambda: GoalRule(revenue=Flat(1), payout=100),
    lambda: AffiliateOverride("", payout=Flat(1)),
    lambda: CommissionRules(goals=()),
    lambda: CommissionRules(goals=(GoalRule(revenue=Flat(1), payout=Flat(1)), GoalRule(revenue=Flat(2), payout=Flat(2)))),
    lambda: CommissionRules(
        goals=(GoalRule(revenue=Flat(1), payout=Flat(1)),),
        overrides=(AffiliateOverride("a", payout=Flat(1)), AffiliateOverride("a", payout=Flat(2))),
    ),
]


@pytest.mark.parametrize("build", INVALID_RULES)
def test_invalid_rules_are_rejected(build):
    with pytest.raises(ValidationError) as caught:
        build()
    assert caught.value.code == "invalid_commission_rule"


def test_rules_round_trip_through_json_and_are_validated_on_decode():
    assert msgspec.json.decode(msgspec.json.encode(OFFER), type=CommissionRules) == OFFER
    bad = b'{"goals": [{"revenue": {"type": "flat", "amount_minor": 1}, "payout": {"type": "percentage", "bps": 20000}}]}'
    with pytest.raises(ValidationError):
        msgspec.json.decode(bad, type=CommissionRules)


def test_rules_are_frozen():
    with pytest.raises(AttributeError):
        OFFER.goals[0].payout.amount_minor = 1  # type: ignore[misc]
