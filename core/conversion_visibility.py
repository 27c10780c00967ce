"""What each role is shown of a conversion (the conversions API and exports alike).

- organization-wide roles: everything;
- advertiser: what it owes (``revenue_minor``), never what the affiliate earns
  (``payout_minor``, ``rule_applied``, a history row's ``payout_delta_minor``);
- affiliate: what it earns, never what the advertiser pays or the sale's details
  (``revenue_minor``, ``advertiser_id``, ``external_id``, the sale amount, product,
  order, customer, metadata, the visitor's address and user agent, ``rule_applied``,
  ``postback_id``, a history row's ``revenue_delta_minor`` and ``actor``).

A role may not filter by a field hidden from it.
"""

from __future__ import annotations

from core.permissions import Scope

ADVERTISER_HIDDEN = frozenset({"payout_minor", "rule_applied", "payout_delta_minor"})
AFFILIATE_HIDDEN = frozenset({
    "advertiser_id", "revenue_minor", "external_id", "sale_amount_minor", "sale_currency", "product_id", "order_id",
    "customer_id", "metadata", "ip", "user_agent", "rule_applied", "postback_id", "revenue_delta_minor", "actor",
})


def hidden_from(scope: Scope) -> frozenset[str]:
    if scope.affiliate_id is not None:
        return AFFILIATE_HIDDEN
    if scope.advertiser_id is not None:
        return ADVERTISER_HIDDEN
    return frozenset()
