"""What an affiliate is shown of an offer's commission rules: its own payout, per goal.

An affiliate never sees what the advertiser pays (revenue) nor other affiliates'
overrides. ``payout_rules_for`` gives, for every goal a conversion of this affiliate
can have, the payout rule ``core.commission.compute_commission`` would apply, with the
same precedence: its override for the goal, the offer's rule for the goal, its
override for the default goal, the offer's default goal. A goal only the affiliate's
override names counts when the offer has a default goal (else such a conversion has no
revenue rule and is refused).
"""

from __future__ import annotations

import msgspec

from core.commission import DEFAULT_GOAL, CommissionRules, Rule


class PayoutRule(msgspec.Struct, frozen=True, kw_only=True):
    goal: str | None  # None: the default goal (a postback without goal)
    payout: Rule


def payout_rules_for(rules: CommissionRules, affiliate_id: str) -> list[PayoutRule]:
    """The affiliate's payout per goal, default goal first, then by name."""
    offer = {g.goal: g.payout for g in rules.goals}
    own = {o.goal: o.payout for o in rules.overrides if o.affiliate_id == affiliate_id}
    goals = set(offer) | (set(own) if DEFAULT_GOAL in offer else set())
    shown = []
    for goal in sorted(goals, key=lambda g: (g is not None, g or "")):
        for candidate in (goal, DEFAULT_GOAL):
            rule = own.get(candidate) or offer.get(candidate)
            if rule is not None:
                shown.append(PayoutRule(goal=goal, payout=rule))
                break
    return shown
