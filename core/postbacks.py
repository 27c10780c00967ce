"""What a conversion postback says, checked field by field (no HTTP here).

The edge hands over the fields it read (query string, form or JSON object: all end up a
``dict``) and gets back a ``PostbackFields`` or a ``ValidationError`` whose message
names the field. Rules:

- ``click_id`` (alias ``transaction_id``): required unless ``click_optional`` (the pixel
  may take it from the cookie instead); any text up to 100 characters. A value that is
  not one of our click ids is kept: the worker stores it as ``unknown_click`` so the
  advertiser can see what it sent.
- ``external_id``: the advertiser's order id, 1–200 characters, the idempotency key.
- ``amount`` (decimal string or number) needs ``currency`` (ISO 4217); converted to
  integer minor units by ``core.money`` (NaN, infinities, negatives, more decimals than
  the currency has: refused). No amount: a CPA conversion without a sale value.
- ``status``: ``approved`` (default), ``pending`` or ``rejected``.
- ``goal``, ``product_id``, ``order_id``, ``customer_id``: optional text (goal ≤ 100,
  the others ≤ 200 characters).
- ``metadata``: a JSON object (or, from a query string or form, its JSON text), at most
  ``METADATA_MAX_BYTES`` once compacted.
- ``ip`` / ``country``: the customer's address and ISO country, when the advertiser
  knows them (fraud rules compare them with the click's); the pixel takes the browser's.
- ``advertiser_id``: a UUID; needed to pick the signing secret of a signed postback and
  with an organization-wide API key.

Text fields must be strings (or JSON integers) without control characters; unknown fields are ignored
(advertisers' platforms add their own).
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import uuid
from typing import Optional, Union

import msgspec
import orjson

from core.errors import ValidationError
from core.models import APPROVED, POSTBACK_STATUSES
from core.money import currency_exponent, parse_amount_minor

METADATA_MAX_BYTES = 4096
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
CLICK_ID_MAX_LENGTH = 100
_TEXT_LIMITS = {"goal": 100, "product_id": 200, "order_id": 200, "customer_id": 200}


class PostbackFields(msgspec.Struct, frozen=True, kw_only=True):
    click_id: str | None
    external_id: str
    status: str
    amount_minor: int | None = None
    currency: str | None = None
    goal: str | None = None
    product_id: str | None = None
    order_id: str | None = None
    customer_id: str | None = None
    metadata: str | None = None  # compact JSON text of an object
    advertiser_id: str | None = None
    ip: str | None = None
    country: str | None = None


def credential_field(prefix: str, secret: str) -> str:
    """The ``keys.postback_auth`` field of a postback token (``tok``) or API key (``key``):
    the prefix and the SHA-256 hex of the secret, so the hash holds no usable secret."""
    return f"{prefix}:{hashlib.sha256(secret.encode()).hexdigest()}"


def invalid(field: str, message: str) -> ValidationError:
    error = ValidationError("invalid_postback", f"{field}: {message}")
    error.field = field
    return error


def _text(fields: dict, name: str, max_length: int, *, required: bool = False) -> str | None:
    value = fields.get(name)
    if value is None or value == "":
        if required:
            raise invalid(name, "is required")
        return None
    if isinstance(value, int) and not isinstance(value, bool):  # numeric order ids (JSON) are common
        value = str(value)
    if not isinstance(value, str):
        raise invalid(name, "must be a string")
    if len(value) > max_length:
        raise invalid(name, f"must be at most {max_length} characters")
    if _CONTROL.search(value):
        raise invalid(name, "must not contain control characters")
    return value


def _metadata(value: object) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise invalid("metadata", "must be a JSON object") from None
    if not isinstance(value, dict):
        raise invalid("metadata", "must be a JSON object")
    text = orjson.dumps(value).decode()
    if len(text.encode()) > METADATA_MAX_BYTES:
        raise invalid("metadata", f"must be at most {METADATA_MAX_BYTES} bytes of JSON")
    return text


_Id = Union[str, int, None]  # ids arrive as text, or as JSON integers


class PostbackIn(msgspec.Struct, frozen=True):
    """The fields' shapes, checked by msgspec before their meaning is: a JSON ``true`` for
    an order id or a list for an amount is refused here, naming the field. Unknown
    fields are ignored."""

    click_id: _Id = None
    transaction_id: _Id = None
    external_id: _Id = None
    amount: Union[str, int, float, None] = None
    currency: Optional[str] = None
    status: Optional[str] = None
    goal: _Id = None
    product_id: _Id = None
    order_id: _Id = None
    customer_id: _Id = None
    metadata: Union[str, dict, None] = None
    advertiser_id: Optional[str] = None
    ip: Optional[str] = None
    country: Optional[str] = None


_FIELD_PATH = re.compile(r"at `\$\.([a-z_]+)")


def _shaped(fields: dict) -> dict:
    try:
        return msgspec.structs.asdict(msgspec.convert(fields, PostbackIn))
    except msgspec.ValidationError as exc:
        found = _FIELD_PATH.search(str(exc))
        name = found.group(1) if found else "body"
        raise invalid(name, str(exc).split(" - at ")[0]) from None


def parse_postback(fields: dict, *, click_optional: bool = False) -> PostbackFields:
    """The checked postback in ``fields``, or ``ValidationError`` naming the first bad field."""
    fields = _shaped(fields)
    click_name = "click_id" if fields.get("click_id") not in (None, "") else "transaction_id"
    click_id = _text(fields, click_name, CLICK_ID_MAX_LENGTH, required=not click_optional)
    external_id = _text(fields, "external_id", 200, required=True)

    status = fields.get("status") or APPROVED
    if status not in POSTBACK_STATUSES:
        raise invalid("status", f"must be one of {', '.join(POSTBACK_STATUSES)}")

    amount, currency = fields.get("amount"), fields.get("currency")
    amount_minor = None
    if currency not in (None, ""):
        if not isinstance(currency, str):
            raise invalid("currency", "must be an ISO 4217 code such as USD")
        try:
            currency_exponent(currency)
        except ValidationError as exc:
            raise invalid("currency", exc.message) from None
    else:
        currency = None
    if amount not in (None, ""):
        if currency is None:
            raise invalid("currency", "is required with amount")
        try:
            amount_minor = parse_amount_minor(amount, currency)
        except ValidationError as exc:
            raise invalid("amount", exc.message) from None

    advertiser_id = fields.get("advertiser_id")
    if advertiser_id not in (None, ""):
        try:
            advertiser_id = str(uuid.UUID(str(advertiser_id)))
        except ValueError:
            raise invalid("advertiser_id", "must be a UUID") from None
    else:
        advertiser_id = None

    ip = fields.get("ip")
    if ip not in (None, ""):
        try:
            ip = str(ipaddress.ip_address(str(ip)))
        except ValueError:
            raise invalid("ip", "must be an IPv4 or IPv6 address") from None
    else:
        ip = None
    country = fields.get("country")
    if country not in (None, ""):
        if not isinstance(country, str) or len(country) != 2 or not country.isascii() or not country.isalpha():
            raise invalid("country", "must be a two-letter ISO 3166 code")
        country = country.upper()
    else:
        country = None

    return PostbackFields(
        ip=ip, country=country,
        click_id=click_id, external_id=external_id, status=status, amount_minor=amount_minor,
        currency=currency,
        advertiser_id=advertiser_id, metadata=_metadata(fields.get("metadata")),
        **{name: _text(fields, name, limit) for name, limit in _TEXT_LIMITS.items()},
    )
