"""What is sent for an event: the webhook's JSON and headers, the postback's URL.

- **Webhook**: ``POST`` of ``{"id", "type", "created_at", "organization_id", "data"}``
  (``data`` is the outbox event's payload). The body is encoded once, when the delivery
  is made, so every attempt sends the same bytes; each attempt signs them afresh
  (``AffTok-Signature: t=<now>,v1=<hmac>`` with one ``v1`` per live secret, see
  ``core.signatures``). ``AffTok-Event-Id`` is the event's stable id, the receiver's
  dedupe key: delivery is at least once.
- **Affiliate postback**: ``GET`` of the affiliate's template with the macros expanded
  (values percent-encoded; macros only after the host, see ``core.macros``).
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from typing import Iterable, Mapping

import msgspec

from core.macros import CompiledTemplate, validate_url_template
from core.money import format_minor
from core.signatures import SIGNATURE_HEADER, sign_all

CONVERSION_EVENTS = ("conversion.created", "conversion.approved", "conversion.rejected", "conversion.reversed")
EVENT_TYPES = CONVERSION_EVENTS + ("cap.reached", "endpoint.disabled")
POSTBACK_MACROS = ("click_id", "transaction_id", "sub1", "sub2", "sub3", "sub4", "sub5", "payout", "currency",
                   "status", "offer_id", "conversion_id", "goal", "event_id")
EVENT_ID_HEADER = "AffTok-Event-Id"
EVENT_TYPE_HEADER = "AffTok-Event-Type"
DELIVERY_ID_HEADER = "AffTok-Delivery-Id"
_encoder = msgspec.json.Encoder()


class WebhookEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    type: str
    created_at: dt.datetime
    organization_id: uuid.UUID
    data: dict


def webhook_body(event_id: uuid.UUID, event_type: str, org_id: uuid.UUID, created_at: dt.datetime,
                 payload: dict) -> bytes:
    return _encoder.encode(WebhookEvent(id=event_id, type=event_type, created_at=created_at,
                                        organization_id=org_id, data=payload))


def webhook_headers(body: bytes, secrets: Iterable[str], now_s: int, event_id: uuid.UUID, event_type: str,
                    delivery_id: uuid.UUID) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        EVENT_ID_HEADER: str(event_id), EVENT_TYPE_HEADER: event_type, DELIVERY_ID_HEADER: str(delivery_id),
        SIGNATURE_HEADER: sign_all([s.encode() for s in secrets], body, now_s),
    }


def postback_headers(event_id: uuid.UUID, event_type: str, delivery_id: uuid.UUID) -> dict[str, str]:
    return {EVENT_ID_HEADER: str(event_id), EVENT_TYPE_HEADER: event_type, DELIVERY_ID_HEADER: str(delivery_id)}


def postback_values(event_id: uuid.UUID, payload: Mapping, subs: Iterable[str | None]) -> dict[str, str | None]:
    """The macro values of a conversion event; ``subs`` are the click's sub1..sub5."""
    currency = payload.get("currency")
    payout_minor = payload.get("payout_minor")
    payout = format_minor(payout_minor, currency) if currency and isinstance(payout_minor, int) else None
    values: dict[str, str | None] = {
        "click_id": payload.get("click_id"), "payout": payout, "currency": currency,
        "status": payload.get("status"), "offer_id": payload.get("offer_id"),
        "conversion_id": payload.get("conversion_id"), "goal": payload.get("goal"), "event_id": str(event_id),
    }
    values.update(zip(("sub1", "sub2", "sub3", "sub4", "sub5"), subs))
    return values


def validate_postback_template(template: str) -> str:
    return validate_url_template(template, POSTBACK_MACROS)


def postback_url(template: str, values: Mapping[str, str | None]) -> str:
    return _compiled(template).expand(values)


@functools.lru_cache(maxsize=4096)
def _compiled(template: str) -> CompiledTemplate:
    return CompiledTemplate(template)
