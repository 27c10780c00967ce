"""Records that cross process boundaries, and what each one's wire form promises."""

from __future__ import annotations

import msgspec

# Click outcomes, as recorded and reported.
REDIRECT = "redirect"
FALLBACK_PAUSED = "fallback_paused"
FALLBACK_UNAPPROVED = "fallback_unapproved"
FALLBACK_GEO = "fallback_geo"
UNAVAILABLE = "unavailable"  # no fallback configured: the visitor got 404, the click is kept


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


CLICK_BATCH_VERSION = b"1"
click_batch_encoder = msgspec.msgpack.Encoder()
click_batch_decoder = msgspec.msgpack.Decoder(list[ClickRecord])
link_config_encoder = msgspec.msgpack.Encoder()
link_config_decoder = msgspec.msgpack.Decoder(LinkConfig)
