"""Data subject rights (GDPR access and erasure, CCPA), from plain values.

A request names its data subject by exactly one selector:

- ``click_id``: one click (and, through it, the visitor);
- ``ip``: every click from that address. Matched exactly: in an organization that
  stores addresses truncated (``ip_truncate``) a full address matches nothing, and a
  truncated one is shared by many visitors, so it is not a selector of one person;
- ``customer_id`` / ``email_sha256``: the advertiser's customer fields. Conversions hold
  ``customer_id`` (sent with a postback); no table holds an e-mail hash yet.

``SOURCES`` is the contract between this module and ``core.store.privacy``: for each
selector, every table that holds such a field and is searched, exported and erased.
A response lists them, so an empty list says plainly that nothing was searched.

Erasure scrubs the personal fields (``ERASED_CLICK_FIELDS``, ``ERASED_CONVERSION_FIELDS``)
and keeps what reports count by: ids, times, offer/affiliate/link, outcome or status,
money, and the coarse country and device type. Every count and amount stays what it was.
A conversion is found by its own click id, address or customer id; its external id and
order id are the advertiser's business records, not the person's, and stay.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

import msgspec

from core.errors import ValidationError
from core.ids import is_click_id

SelectorKind = Literal["click_id", "ip", "customer_id", "email_sha256"]
SELECTORS: tuple[SelectorKind, ...] = ("click_id", "ip", "customer_id", "email_sha256")

# Every table searched for each selector; core.store.privacy holds one query per pair.
SOURCES: dict[str, tuple[str, ...]] = {
    "click_id": ("clicks", "conversions"),
    "ip": ("clicks", "conversions"),
    "customer_id": ("conversions",),
    "email_sha256": (),
}

ERASED_CLICK_FIELDS = ("ip", "user_agent", "referer", "sub1", "sub2", "sub3", "sub4", "sub5", "source_id")
# metadata is the advertiser's free-form JSON: it may hold anything about the customer.
ERASED_CONVERSION_FIELDS = ("ip", "user_agent", "customer_id", "metadata")

CUSTOMER_ID_MAX_LENGTH = 200


class Subject(msgspec.Struct, frozen=True, kw_only=True):
    """A data subject as one selector; ``value`` in canonical form."""

    kind: str
    value: str


def subject_of(
    *, click_id: str | None = None, ip: str | None = None, customer_id: str | None = None,
    email_sha256: str | None = None,
) -> Subject:
    """The one selector given, validated and canonical; ``ValidationError`` otherwise."""
    given = {k: v for k, v in zip(SELECTORS, (click_id, ip, customer_id, email_sha256)) if v is not None}
    if len(given) != 1:
        raise ValidationError("invalid_subject", f"give exactly one of {', '.join(SELECTORS)}")
    [(kind, value)] = given.items()
    return Subject(kind=kind, value=_CANONICAL[kind](value))


def _click_id(value: str) -> str:
    if not is_click_id(value):
        raise ValidationError("invalid_click_id", "click_id must be 44 lower-case hex characters")
    return value


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise ValidationError("invalid_ip", "ip must be an IPv4 or IPv6 address") from None


def _customer_id(value: str) -> str:
    if not 1 <= len(value) <= CUSTOMER_ID_MAX_LENGTH:
        raise ValidationError("invalid_customer_id", f"customer_id must be 1 to {CUSTOMER_ID_MAX_LENGTH} characters")
    return value


def _email_sha256(value: str) -> str:
    lowered = value.strip().lower()
    if len(lowered) != 64 or any(c not in "0123456789abcdef" for c in lowered):
        raise ValidationError("invalid_email_sha256", "email_sha256 must be 64 hex characters")
    return lowered


_CANONICAL = {"click_id": _click_id, "ip": _ip, "customer_id": _customer_id, "email_sha256": _email_sha256}


def ip_forms(ip: str) -> list[str]:
    """The stored forms of one address: an IPv4 address may also arrive IPv4-mapped (``::ffff:a.b.c.d``)."""
    address = ipaddress.ip_address(ip)
    if address.version == 4:
        return [str(address), str(ipaddress.IPv6Address(f"::ffff:{address}"))]
    if address.ipv4_mapped is not None:
        return [str(address.ipv4_mapped), str(address)]
    return [str(address)]
