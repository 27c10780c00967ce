"""Which endpoints an event goes to: one affiliate postback at most, every matching webhook.

- **Postbacks** are the affiliate's, for conversion events only: among its active
  templates taking the event type, those for any offer or this one, any goal or this one,
  the most specific wins (offer and goal, then offer, then goal, then neither; the
  oldest on a tie), so an affiliate never gets two postbacks for one event.
- **Webhooks**: every active endpoint taking the event type that is the organization's
  own, or the event's affiliate's. Another affiliate's endpoint never sees it.

Endpoints passed in are one organization's; the caller filters by organization.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Iterable

import msgspec

from core.delivery_requests import CONVERSION_EVENTS


class EndpointRoute(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    kind: str  # "postback" | "webhook"
    affiliate_id: uuid.UUID | None
    offer_id: uuid.UUID | None
    goal: str | None
    event_types: tuple[str, ...]
    created_at: dt.datetime


class EventFacts(msgspec.Struct, frozen=True, kw_only=True):
    event_type: str
    affiliate_id: uuid.UUID | None
    offer_id: uuid.UUID | None
    goal: str | None


def route_event(event: EventFacts, endpoints: Iterable[EndpointRoute]) -> list[uuid.UUID]:
    """The ids of the endpoints that receive ``event``: the postback first, then webhooks."""
    postbacks: list[EndpointRoute] = []
    webhooks: list[uuid.UUID] = []
    for endpoint in endpoints:
        if event.event_type not in endpoint.event_types:
            continue
        if endpoint.kind == "webhook":
            if endpoint.affiliate_id is None or endpoint.affiliate_id == event.affiliate_id:
                webhooks.append(endpoint.id)
        elif _postback_matches(endpoint, event):
            postbacks.append(endpoint)
    chosen = min(postbacks, key=_specificity, default=None)
    return ([chosen.id] if chosen else []) + webhooks


def _postback_matches(endpoint: EndpointRoute, event: EventFacts) -> bool:
    return (event.event_type in CONVERSION_EVENTS and event.affiliate_id is not None
            and endpoint.affiliate_id == event.affiliate_id
            and endpoint.offer_id in (None, event.offer_id)
            and endpoint.goal in (None, event.goal))


def _specificity(endpoint: EndpointRoute) -> tuple[int, dt.datetime, str]:
    rank = (endpoint.offer_id is not None) * 2 + (endpoint.goal is not None)
    return (-rank, endpoint.created_at, str(endpoint.id))
