"""Records that cross process boundaries, and what each one's wire form promises."""

from __future__ import annotations

import msgspec

# Click outcomes, as recorded and reported.
REDIRECT = "redirect"
FALLBACK_PAUSED = "fallback_paused"
FALLBACK_UNAPPROVED = "fallback_unapproved"
FALLBACK_GEO = "fallback_geo"
UNAVAILABLE = "unavailable"  # no fallback configured: the visitor got 404, the click is kept
FALLBACK_CAPPED = "fallback_capped"  # the offer's (or this affiliate's) click cap is reached

# Conversion statuses: what a postback may report, and the lifecycle's own.
PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
REVERSED = "reversed"
POSTBACK_STATUSES = (APPROVED, PENDING, REJECTED)


class ClickRecord(msgspec.Struct, array_like=True, frozen=True):
    """One click as the edge saw it. Encoded as msgpack arrays inside a stream entry.

    ``ts_ms`` is the edge's wall clock; the click id's prefix carries the same instant,
    so a redelivered record always lands in the same daily partition.
    """

    click_id: str
    ts_ms: int
    org_id: str
    offer_id: str
    affiliate_id: str
    link_id: str
    outcome: str
    sub1: str | None = None
    sub2: str | None = None
    sub3: str | None = None
    sub4: str | None = None
    sub5: str | None = None
    source_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    referer: str | None = None
    country: str | None = None
    device_type: str | None = None


class LinkConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the edge needs to answer one tracking link, published by the api.

    ``destination_url`` is the effective landing template (the affiliate's override if
    any, else the offer's); ``affiliate_status`` is the approval on this offer.
    """

    token: str
    link_id: str
    org_id: str
    offer_id: str
    affiliate_id: str
    offer_status: str
    affiliate_status: str
    destination_url: str
    fallback_url: str | None = None
    geo_allow: list[str] = []
    geo_deny: list[str] = []
    ip_truncate: bool = False  # the organization stores visitors' addresses truncated
    # Click caps: until this instant (ms since the epoch, the end of the capped day or
    # month) clicks take the fallback as outcome ``fallback_capped``. 0 = not capped.
    click_capped_until_ms: int = 0


class PostbackRecord(msgspec.Struct, array_like=True, frozen=True):
    """One accepted postback (or pixel hit) as the edge saw it, validated and authenticated.

    Encoded as msgpack arrays inside a conversions stream entry (``v`` =
    ``CONVERSION_BATCH_VERSION``, ``p`` = msgpack ``list[PostbackRecord]``).
    ``postback_id`` is a fresh id from ``core.ids.new_click_id(ts_ms)`` (same format as a
    click id); ``amount_minor`` is already integer minor units of ``currency`` (checked
    by ``core.money``); ``status`` is one of ``POSTBACK_STATUSES``; ``goal`` None is the
    default goal. ``actor`` says how it was authenticated: ``postback:token``,
    ``postback:signature``, ``api_key:<key id>`` or ``pixel``. ``metadata`` is compact
    JSON text (an object), or None. ``ip`` / ``user_agent`` / ``country`` describe the
    customer: the visitor's browser for the pixel; for a server postback the ``ip`` and
    ``country`` the advertiser sent, if any (never its server's address), and no user agent.
    """

    postback_id: str
    ts_ms: int
    org_id: str
    advertiser_id: str
    source: str  # "postback" | "pixel"
    actor: str
    click_id: str | None
    external_id: str
    status: str
    amount_minor: int | None = None
    currency: str | None = None
    goal: str | None = None
    product_id: str | None = None
    order_id: str | None = None
    customer_id: str | None = None
    metadata: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    country: str | None = None
    correlation_id: str | None = None


class SigningSecret(msgspec.Struct, frozen=True):
    secret: str
    expires_at_ms: int | None = None  # None: current; else valid until then (rotation grace)


class AdvertiserAuth(msgspec.Struct, frozen=True, kw_only=True):
    """What the edge knows of an advertiser, published by the api (field ``adv:<id>``)."""

    org_id: str
    advertiser_id: str
    active: bool = True
    signing_secrets: list[SigningSecret] = []
    ip_truncate: bool = False  # the organization's setting: the pixel truncates the visitor's address


class PostbackCredential(msgspec.Struct, frozen=True, kw_only=True):
    """A postback token (field ``tok:<sha256 hex>``) or an API key that may send
    conversions (field ``key:<sha256 hex>``), published by the api. ``advertiser_id``
    None: an organization-wide key, so the postback must name its ``advertiser_id``."""

    org_id: str
    advertiser_id: str | None = None
    key_id: str | None = None
    expires_at_ms: int | None = None


CONVERSION_BATCH_VERSION = b"1"
postback_batch_encoder = msgspec.msgpack.Encoder()
postback_batch_decoder = msgspec.msgpack.Decoder(list[PostbackRecord])
postback_record_decoder = msgspec.msgpack.Decoder(PostbackRecord)
advertiser_auth_decoder = msgspec.msgpack.Decoder(AdvertiserAuth)
postback_credential_decoder = msgspec.msgpack.Decoder(PostbackCredential)

CLICK_BATCH_VERSION = b"1"
click_batch_encoder = msgspec.msgpack.Encoder()
click_batch_decoder = msgspec.msgpack.Decoder(list[ClickRecord])
link_config_encoder = msgspec.msgpack.Encoder()
link_config_decoder = msgspec.msgpack.Decoder(LinkConfig)
