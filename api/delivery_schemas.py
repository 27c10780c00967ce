"""Request and response bodies of the outbound-delivery API: webhooks, affiliate
postbacks, their signing secrets, and deliveries with their attempts.

Bodies are bounded here; what depends on the domain (event types a kind takes, the URL
passing the SSRF guard, whose endpoint it is) is ``core.endpoint_checks``'.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from api.schemas import Body, PageQuery, Url
from core.store.delivery_endpoints import DeliveryEndpoint
from core.store.webhook_secrets import WEBHOOK_SECRET_GRACE, WEBHOOK_SECRET_GRACE_MAX, WebhookSecretInfo

# Text Postgres stores as given: no control characters (a NUL it cannot store at all).
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
EventType = Annotated[str, Meta(min_length=1, max_length=100, pattern="^[a-z._]+$", description=(
    "conversion.created | conversion.approved | conversion.rejected | conversion.reversed | cap.reached |"
    " endpoint.disabled"))]
EventTypes = Annotated[list[EventType], Meta(min_length=1, max_length=20)]
Description = Annotated[str, Meta(max_length=200, pattern=_PRINTABLE)]
Goal = Annotated[str, Meta(min_length=1, max_length=100, pattern=_PRINTABLE)]
EndpointStatus = Literal["active", "disabled"]
PostbackUrl = Annotated[str, Meta(min_length=1, max_length=2048, description=(
    "absolute http(s) URL requested with GET; macros {click_id} {transaction_id} {sub1}..{sub5} {payout} {currency}"
    " {status} {offer_id} {conversion_id} {goal} {event_id}, only after the host"))]


class WebhookCreate(Body):
    url: Url
    event_types: EventTypes | None = None  # default: every event type
    affiliate_id: uuid.UUID | None = None  # None: the organization's own; an affiliate key: its own, always
    description: Description = ""


class WebhookPatch(Body):
    url: Url | UnsetType = UNSET
    event_types: EventTypes | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    status: EndpointStatus | UnsetType = UNSET  # disabled holds its pending deliveries; active releases them


class AffiliatePostbackCreate(Body):
    url: PostbackUrl
    affiliate_id: uuid.UUID | None = None  # required for organization keys; an affiliate key: its own, always
    offer_id: uuid.UUID | None = None  # only this offer's conversions; None: any offer
    goal: Goal | None = None  # only this goal's conversions; None: any goal
    event_types: EventTypes | None = None  # conversion events only; default: the four
    description: Description = ""


class AffiliatePostbackPatch(Body):
    url: PostbackUrl | UnsetType = UNSET
    offer_id: uuid.UUID | None | UnsetType = UNSET
    goal: Goal | None | UnsetType = UNSET
    event_types: EventTypes | UnsetType = UNSET
    description: Description | UnsetType = UNSET
    status: EndpointStatus | UnsetType = UNSET


class AffiliatePostbackQuery(PageQuery):
    affiliate_id: uuid.UUID | None = None


class EndpointPage(msgspec.Struct, kw_only=True):
    data: list[DeliveryEndpoint]
    next_cursor: str | None = None


class WebhookCreated(DeliveryEndpoint, kw_only=True):
    """A new webhook and, this once, its signing secret: verify ``AffTok-Signature`` with it."""

    secret: str


class WebhookSecretRotate(Body):
    grace_period_s: Annotated[int, Meta(ge=0, le=int(WEBHOOK_SECRET_GRACE_MAX.total_seconds()), description=(
        "how long the secrets current until now keep signing beside the new one"
    ))] = int(WEBHOOK_SECRET_GRACE.total_seconds())


class WebhookSecretCreated(WebhookSecretInfo, kw_only=True):
    """A new current signing secret, in this response only. Requests are signed with it and
    with the secrets current until now, until their ``expires_at``: switch the receiver meanwhile."""

    secret: str


class WebhookSecretList(msgspec.Struct, kw_only=True):
    data: list[WebhookSecretInfo]  # those requests are signed with now, newest first


# Deliveries (/v1/deliveries).

DeliveryStatus = Literal["pending", "delivered", "dead"]


class DeliveryQuery(PageQuery):
    endpoint_id: uuid.UUID | None = None
    status: DeliveryStatus | None = None
    event_type: EventType | None = None
    event_id: uuid.UUID | None = None


class DeliveryView(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    org_id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID  # the receiver's dedupe key (AffTok-Event-Id)
    event_type: str
    status: str  # pending | delivered | dead
    attempt_count: int  # attempts made so far
    event_created_at: dt.datetime
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None  # pending: when it is tried next; null: held, its endpoint is disabled
    retry_until: dt.datetime  # given up (dead) after this
    last_attempt_at: dt.datetime | None
    last_status_code: int | None
    last_error: str | None  # connect | timeout | tls | protocol | unsafe_url | invalid_request
    delivered_at: dt.datetime | None
    dead_at: dt.datetime | None


class DeliveryAttemptView(msgspec.Struct, kw_only=True):
    attempt: int
    started_at: dt.datetime
    latency_ms: int
    status_code: int | None  # null: no HTTP answer (see error)
    error: str | None
    response_excerpt: str
    url: str  # as requested (a postback's with its macros expanded)


class DeliveryDetail(DeliveryView, kw_only=True):
    endpoint_kind: str  # postback | webhook
    endpoint_url: str  # the endpoint's URL now (each attempt's is in attempts)
    payload: dict | UnsetType = UNSET  # webhooks: the JSON body sent
    macro_values: dict[str, str | None] | UnsetType = UNSET  # postbacks: the values the template is expanded with
    attempts: list[DeliveryAttemptView]  # oldest first


class DeliveryPage(msgspec.Struct, kw_only=True):
    data: list[DeliveryView]
    next_cursor: str | None = None


class DeliveryReplay(Body):
    """No options: send ``{}``."""


class DeadDeliveriesReplay(Body):
    endpoint_id: uuid.UUID
    status: Literal["dead"]  # which deliveries: the dead ones (the only choice for now)


class ReplayedDeliveries(msgspec.Struct, kw_only=True):
    replayed: int
