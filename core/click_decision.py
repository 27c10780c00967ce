"""What a click on a known link gets: the landing page, the fallback, or nothing.

Checks run in a fixed order, and the first that fails names the outcome: the offer is
not active (``fallback_paused``), the affiliate is not approved on the offer
(``fallback_unapproved``), the offer's or this affiliate's click cap is reached
(``fallback_capped``: the click's own clock is before ``click_capped_until_ms``, one
integer compare, so a cap lifts by itself when its day or month ends), the visitor's
country is outside ``geo_allow`` (when that list is non-empty; an unknown country is
outside it) or inside ``geo_deny`` (``fallback_geo``). A fallback outcome without a
fallback URL becomes ``unavailable``: the visitor gets a 404 and the click is still
recorded. Nothing here builds a URL, so nothing here can send a visitor somewhere that
was not configured.
"""

from __future__ import annotations

from typing import NamedTuple

from core.models import (
    FALLBACK_CAPPED,
    FALLBACK_GEO,
    FALLBACK_PAUSED,
    FALLBACK_UNAPPROVED,
    REDIRECT,
    UNAVAILABLE,
    LinkConfig,
)

OFFER_ACTIVE = "active"
AFFILIATE_APPROVED = "approved"


class LinkRules(NamedTuple):
    """A LinkConfig reduced to what the decision reads, prepared once per config."""

    blocked_outcome: str | None  # set when the answer does not depend on the visitor
    capped_until_ms: int  # clicks before this instant (ms since the epoch) are over a click cap
    geo_allow: frozenset[str]
    geo_deny: frozenset[str]
    has_destination: bool
    has_fallback: bool


def link_rules(config: LinkConfig, *, has_destination: bool = True, has_fallback: bool | None = None) -> LinkRules:
    """Prepare ``config``; callers pass ``has_*=False`` for URLs they found unusable."""
    if has_fallback is None:
        has_fallback = bool(config.fallback_url)
    blocked = None
    if config.offer_status != OFFER_ACTIVE:
        blocked = FALLBACK_PAUSED
    elif config.affiliate_status != AFFILIATE_APPROVED:
        blocked = FALLBACK_UNAPPROVED
    return LinkRules(
        blocked, config.click_capped_until_ms, frozenset(c.strip().upper() for c in config.geo_allow),
        frozenset(c.strip().upper() for c in config.geo_deny), has_destination, has_fallback,
    )


def decide_click(rules: LinkRules, country: str | None, now_ms: int) -> str:
    """The click's outcome (one of the ``core.models`` outcome constants) at ``now_ms``."""
    outcome = rules.blocked_outcome
    if outcome is None:
        if now_ms < rules.capped_until_ms:
            outcome = FALLBACK_CAPPED
        elif (rules.geo_allow and country not in rules.geo_allow) or (country is not None and country in rules.geo_deny):
            outcome = FALLBACK_GEO
        elif rules.has_destination:
            return REDIRECT
        else:
            return UNAVAILABLE
    return outcome if rules.has_fallback else UNAVAILABLE
