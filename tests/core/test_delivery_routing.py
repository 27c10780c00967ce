"""Which endpoints an event goes to, by table."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from core.delivery_requests import CONVERSION_EVENTS, EVENT_TYPES
from core.delivery_routing import EndpointRoute, EventFacts, route_event

AFF, OTHER_AFF, OFFER, OTHER_OFFER = (uuid.uuid4() for _ in range(4))
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _e(name, kind, affiliate=None, offer=None, goal=None, events=EVENT_TYPES, age=0):
    return EndpointRoute(id=uuid.uuid5(uuid.NAMESPACE_DNS, name), kind=kind, affiliate_id=affiliate, offer_id=offer,
                         goal=goal, event_types=tuple(events), created_at=T0 + dt.timedelta(seconds=age))


def _names(chosen, endpoints):
    by_id = {uuid.uuid5(uuid.NAMESPACE_DNS, n): n for n in endpoints}
    return [by_id[c] for c in chosen]


ENDPOINTS = {
    "pb-any": _e("pb-any", "postback", AFF, events=CONVERSION_EVENTS),
    "pb-any-newer": _e("pb-any-newer", "postback", AFF, events=CONVERSION_EVENTS, age=5),
    "pb-offer": _e("pb-offer", "postback", AFF, OFFER, events=CONVERSION_EVENTS),
    "pb-goal": _e("pb-goal", "postback", AFF, goal="deposit", events=CONVERSION_EVENTS),
    "pb-offer-goal": _e("pb-offer-goal", "postback", AFF, OFFER, "deposit", events=CONVERSION_EVENTS),
    "pb-other-offer": _e("pb-other-offer", "postback", AFF, OTHER_OFFER, events=CONVERSION_EVENTS),
    "pb-other-aff": _e("pb-other-aff", "postback", OTHER_AFF, events=CONVERSION_EVENTS),
    "pb-approved-only": _e("pb-approved-only", "postback", AFF, OFFER, "sale", events=["conversion.approved"]),
    "wh-org": _e("wh-org", "webhook"),
    "wh-aff": _e("wh-aff", "webhook", AFF),
    "wh-other-aff": _e("wh-other-aff", "webhook", OTHER_AFF),
    "wh-caps-only": _e("wh-caps-only", "webhook", events=["cap.reached"]),
}


@pytest.mark.parametrize("event, goal, offer, available, expected", [
    ("conversion.created", None, OFFER, list(ENDPOINTS), ["pb-offer", "wh-org", "wh-aff"]),
    ("conversion.created", "deposit", OFFER, list(ENDPOINTS), ["pb-offer-goal", "wh-org", "wh-aff"]),
    ("conversion.created", "deposit", OTHER_OFFER, list(ENDPOINTS), ["pb-other-offer", "wh-org", "wh-aff"]),
    ("conversion.created", "deposit", uuid.UUID(int=1), list(ENDPOINTS), ["pb-goal", "wh-org", "wh-aff"]),
    ("conversion.created", None, uuid.UUID(int=1), ["pb-any-newer", "pb-any"], ["pb-any"]),
    ("conversion.approved", "sale", OFFER, ["pb-approved-only", "pb-any"], ["pb-approved-only"]),
    ("conversion.created", "sale", OFFER, ["pb-approved-only"], []),
    ("cap.reached", None, OFFER, list(ENDPOINTS), ["wh-org", "wh-aff", "wh-caps-only"]),
    ("conversion.reversed", None, None, ["pb-offer", "pb-other-aff", "wh-other-aff"], []),
])
def test_routing(event, goal, offer, available, expected):
    facts = EventFacts(event_type=event, affiliate_id=AFF, offer_id=offer, goal=goal)
    chosen = route_event(facts, [ENDPOINTS[n] for n in available])
    assert _names(chosen, ENDPOINTS) == expected


def test_an_event_without_an_affiliate_goes_only_to_organization_webhooks():
    facts = EventFacts(event_type="endpoint.disabled", affiliate_id=None, offer_id=None, goal=None)
    assert _names(route_event(facts, ENDPOINTS.values()), ENDPOINTS) == ["wh-org"]
