"""core.postbacks: msgspec checks each field's shape, then its meaning; errors name the field."""

from __future__ import annotations

import pytest

from core.errors import ValidationError
from core.postbacks import parse_postback

BASE = {"click_id": "c1", "external_id": "o-1"}


@pytest.mark.parametrize(("fields", "field"), [
    ({**BASE, "external_id": True}, "external_id"),
    ({**BASE, "order_id": ["a"]}, "order_id"),
    ({**BASE, "amount": [1], "currency": "USD"}, "amount"),
    ({**BASE, "amount": True, "currency": "USD"}, "amount"),
    ({**BASE, "currency": 840, "amount": "1"}, "currency"),
    ({**BASE, "metadata": 5}, "metadata"),
    ({**BASE, "status": None, "advertiser_id": 7}, "advertiser_id"),
    ({**BASE, "amount": "1.5", "currency": "JPY"}, "amount"),
    ({**BASE, "ip": "999.1.1.1"}, "ip"),
    ({**BASE, "country": "FRA"}, "country"),
    ({"external_id": "o-1"}, "transaction_id"),
])
def test_a_bad_field_is_named(fields, field):
    with pytest.raises(ValidationError) as caught:
        parse_postback(fields)
    assert caught.value.code == "invalid_postback" and caught.value.field == field
    assert caught.value.message.startswith(f"{field}: ")


def test_json_integers_are_ids_and_unknown_fields_are_ignored():
    parsed = parse_postback({**BASE, "external_id": 12345, "order_id": 9, "sub_tracking": {"x": 1},
                             "transaction_id": "ignored", "amount": 10.5, "currency": "EUR"})
    assert (parsed.external_id, parsed.order_id, parsed.click_id, parsed.amount_minor) == ("12345", "9", "c1", 1050)
