"""What is sent: postback URLs from templates and webhook bodies and headers."""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import urlsplit

import msgspec
import pytest

from core.delivery_requests import (
    postback_url, postback_values, validate_postback_template, webhook_body, webhook_headers,
)
from core.errors import ValidationError
from core.signatures import verify

EVENT = uuid.UUID("0b6f3a3e-2f7c-4d59-9a55-0e4f1b2c3d4e")
PAYLOAD = {"conversion_id": "c-1", "status": "approved", "click_id": "abc", "goal": "sale", "payout_minor": 1050,
           "currency": "USD", "offer_id": "o-1"}


def test_every_macro_is_filled_and_encoded():
    values = postback_values(EVENT, PAYLOAD, ("s 1", "a&b=c", None, "ü", "x/y"))
    url = postback_url(
        "https://t.example/pb?cid={click_id}&tid={transaction_id}&p={payout}&cur={currency}&s={status}&o={offer_id}"
        "&cv={conversion_id}&g={goal}&e={event_id}&s1={sub1}&s2={sub2}&s3={sub3}&s4={sub4}&s5={sub5}", values)
    assert url == ("https://t.example/pb?cid=abc&tid=abc&p=10.50&cur=USD&s=approved&o=o-1&cv=c-1&g=sale"
                   f"&e={EVENT}&s1=s%201&s2=a%26b%3Dc&s3=&s4=%C3%BC&s5=x%2Fy")


@pytest.mark.parametrize("currency, minor, shown", [("JPY", 1050, "1050"), ("KWD", 1050, "1.050"), ("USD", 5, "0.05")])
def test_payout_is_in_major_units_of_its_currency(currency, minor, shown):
    assert postback_values(EVENT, {**PAYLOAD, "currency": currency, "payout_minor": minor}, ())["payout"] == shown


def test_a_value_cannot_move_the_host():
    url = postback_url("https://t.example/pb/{sub1}?c={click_id}",
                       postback_values(EVENT, {**PAYLOAD, "click_id": "@127.0.0.1/"}, ("../@evil.example#",)))
    assert urlsplit(url).hostname == "t.example"


@pytest.mark.parametrize("template", [
    "https://{sub1}.example/pb", "https://t.example/pb?r={revenue}", "javascript:alert(1)", "https://t.example/a b",
    "https://user@t.example/", "",
])
def test_bad_templates_are_refused(template):
    with pytest.raises(ValidationError):
        validate_postback_template(template)


def test_webhook_body_and_signature():
    created = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)
    org = uuid.uuid4()
    body = webhook_body(EVENT, "conversion.approved", org, created, PAYLOAD)
    assert msgspec.json.decode(body) == {"id": str(EVENT), "type": "conversion.approved",
                                         "created_at": "2026-11-23T12:00:00Z", "organization_id": str(org),
                                         "data": PAYLOAD}
    headers = webhook_headers(body, ["new-secret-" + "x" * 30, "old-secret-" + "y" * 30], 1_800_000_000, EVENT,
                              "conversion.approved", uuid.uuid4())
    assert headers["AffTok-Event-Id"] == str(EVENT)
    assert headers["AffTok-Signature"].count("v1=") == 2
    for secret in ("new-secret-" + "x" * 30, "old-secret-" + "y" * 30):
        verify(secret.encode(), headers["AffTok-Signature"], body, 1_800_000_000)
