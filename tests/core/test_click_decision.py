import pytest

from core.click_decision import decide_click, link_rules
from core.models import (
    FALLBACK_CAPPED,
    FALLBACK_GEO,
    FALLBACK_PAUSED,
    FALLBACK_UNAPPROVED,
    REDIRECT,
    UNAVAILABLE,
    LinkConfig,
)

NOW_MS = 1_800_000_000_000
CAPPED = {"click_capped_until_ms": NOW_MS + 1}  # capped until a moment after now


def config(**changes) -> LinkConfig:
    base = dict(
        token="t", link_id="l", org_id="o", offer_id="of", affiliate_id="a", offer_status="active",
        affiliate_status="approved", destination_url="https://land.example/x", fallback_url="https://fb.example/",
    )
    return LinkConfig(**{**base, **changes})


@pytest.mark.parametrize(
    ("changes", "country", "expected"),
    [
        ({}, "US", REDIRECT),
        ({}, None, REDIRECT),
        ({"offer_status": "paused"}, "US", FALLBACK_PAUSED),
        ({"offer_status": "archived", "affiliate_status": "pending"}, "US", FALLBACK_PAUSED),
        ({"affiliate_status": "pending"}, "US", FALLBACK_UNAPPROVED),
        ({"affiliate_status": "blocked"}, "US", FALLBACK_UNAPPROVED),
        ({"geo_allow": ["US", "CA"]}, "US", REDIRECT),
        ({"geo_allow": ["us"]}, "US", REDIRECT),
        ({"geo_allow": ["US", "CA"]}, "DE", FALLBACK_GEO),
        ({"geo_allow": ["US"]}, None, FALLBACK_GEO),
        ({"geo_deny": ["DE"]}, "DE", FALLBACK_GEO),
        ({"geo_deny": ["DE"]}, None, REDIRECT),
        ({"geo_allow": ["DE"], "geo_deny": ["DE"]}, "DE", FALLBACK_GEO),
        ({"offer_status": "paused", "fallback_url": None}, "US", UNAVAILABLE),
        ({"affiliate_status": "pending", "fallback_url": ""}, "US", UNAVAILABLE),
        ({"geo_deny": ["DE"], "fallback_url": None}, "DE", UNAVAILABLE),
        ({"fallback_url": None}, "US", REDIRECT),
        # Click caps: capped while now is before the end of the capped day or month.
        (CAPPED, "US", FALLBACK_CAPPED),
        ({"click_capped_until_ms": NOW_MS}, "US", REDIRECT),  # the period has just ended
        ({"click_capped_until_ms": NOW_MS - 86_400_000}, "US", REDIRECT),  # yesterday's cap
        ({"click_capped_until_ms": 0}, "US", REDIRECT),
        ({**CAPPED, "fallback_url": None}, "US", UNAVAILABLE),
        # Order: paused, unapproved, capped, geo.
        ({**CAPPED, "offer_status": "paused"}, "US", FALLBACK_PAUSED),
        ({**CAPPED, "affiliate_status": "pending"}, "US", FALLBACK_UNAPPROVED),
        ({**CAPPED, "geo_deny": ["DE"]}, "DE", FALLBACK_CAPPED),
        ({**CAPPED, "geo_allow": ["US"]}, None, FALLBACK_CAPPED),
    ],
)
def test_decide_click(changes, country, expected):
    assert decide_click(link_rules(config(**changes)), country, NOW_MS) == expected


def test_unusable_urls_never_redirect():
    assert decide_click(link_rules(config(), has_destination=False), "US", NOW_MS) == UNAVAILABLE
    assert decide_click(link_rules(config(offer_status="paused"), has_fallback=False), "US", NOW_MS) == UNAVAILABLE
    assert decide_click(link_rules(config(**CAPPED), has_fallback=False), "US", NOW_MS) == UNAVAILABLE
