"""What an outbound endpoint must satisfy when it is saved: whose it is, which events it
takes, and a URL the SSRF guard accepts.

- **Whose**: an affiliate key's endpoints are its own affiliate's, whatever the body
  says (naming another affiliate is refused, not silently rewritten); an organization
  key names the affiliate, or, for a webhook, none: the organization's own.
- **Events**: webhooks take any of ``EVENT_TYPES`` (default: all of them); affiliate
  postbacks only conversion events (default: the four), since their macros are a
  conversion's.
- **URL**: the worker checks it again, with a fresh lookup, before every request
  (``core.outbound_targets``); checking it here as well tells the owner at once, in
  the 422, instead of through dead deliveries days later. A postback template is
  checked with each macro replaced by a plain value: macros may sit only after the host
  (``validate_postback_template``), so no value can change where the request goes.
  The static checks run first, so a URL that is refused for its shape is refused
  without a DNS lookup.

Resolving a name is I/O: these run before the caller opens its transaction.
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Iterable, Mapping

from core.delivery_requests import CONVERSION_EVENTS, EVENT_TYPES, POSTBACK_MACROS
from core.errors import Forbidden, ValidationError
from core.macros import validate_url_template
from core.outbound_targets import OutboundPolicy, Resolver, parse_url, resolve_target
from core.permissions import Scope
from core.store.delivery_endpoints import POSTBACK, NewEndpoint

_MACRO = re.compile(r"\{[a-z0-9_]+\}")


def endpoint_affiliate(scope: Scope, given: uuid.UUID | None, *, required: bool) -> uuid.UUID | None:
    """The affiliate a new endpoint belongs to (None: the organization's own webhook)."""
    if scope.advertiser_id is not None:
        raise Forbidden("forbidden", "an advertiser key has no webhooks")
    if scope.affiliate_id is not None:
        if given is not None and given != scope.affiliate_id:
            raise Forbidden("forbidden", "an affiliate key manages its own affiliate's endpoints only")
        return scope.affiliate_id
    if given is None and required:
        raise ValidationError("affiliate_required", "affiliate_id is required: a postback is an affiliate's")
    return given


def event_types_for(kind: str, given: Iterable[str] | None) -> list[str]:
    """The event types an endpoint of ``kind`` takes, in the order given, without repeats."""
    allowed = CONVERSION_EVENTS if kind == POSTBACK else EVENT_TYPES
    if given is None:
        return list(allowed)
    chosen = list(dict.fromkeys(given))
    if not chosen:
        raise ValidationError("invalid_event_type", "event_types must name at least one event type")
    for event_type in chosen:
        if event_type not in EVENT_TYPES:
            raise ValidationError("invalid_event_type",
                                  f"unknown event type {event_type!r}; one of {', '.join(EVENT_TYPES)}")
        if event_type not in allowed:
            raise ValidationError("invalid_event_type",
                                  f"affiliate postbacks take conversion events only ({', '.join(CONVERSION_EVENTS)})")
    return chosen


async def checked_url(kind: str, url: str, policy: OutboundPolicy, resolver: Resolver) -> str:
    """``url`` if the guard accepts it now, else ``UnsafeTarget`` (or ``ValidationError``
    for a template's macros and characters)."""
    macros = POSTBACK_MACROS if kind == POSTBACK else ()
    requested = _MACRO.sub("x", url)
    parse_url(requested, policy)  # scheme, credentials, port, address forms: no lookup
    validate_url_template(url, macros)  # characters, macro names and where they sit
    await resolve_target(requested, policy, resolver)  # every address the name has now
    return url


async def new_endpoint(
    kind: str, scope: Scope, policy: OutboundPolicy, resolver: Resolver, *, url: str,
    event_types: list[str] | None, affiliate_id: uuid.UUID | None, description: str,
    offer_id: uuid.UUID | None = None, goal: str | None = None,
) -> NewEndpoint:
    """A new endpoint from the caller's request, every field checked."""
    if kind != POSTBACK and (offer_id is not None or goal is not None):
        raise ValidationError("invalid_request", "only affiliate postbacks take offer_id and goal")
    owner = endpoint_affiliate(scope, affiliate_id, required=kind == POSTBACK)
    types = event_types_for(kind, event_types)
    return NewEndpoint(
        kind=kind, affiliate_id=owner, offer_id=offer_id, goal=goal, url=await checked_url(kind, url, policy, resolver),
        event_types=types, description=description,
    )


async def checked_changes(kind: str, changes: Mapping[str, Any], policy: OutboundPolicy,
                          resolver: Resolver) -> dict[str, Any]:
    """A PATCH's changes, with the URL and the event types checked like a new endpoint's."""
    checked = dict(changes)
    if "event_types" in checked:
        checked["event_types"] = event_types_for(kind, checked["event_types"])
    if "url" in checked:
        checked["url"] = await checked_url(kind, checked["url"], policy, resolver)
    return checked
