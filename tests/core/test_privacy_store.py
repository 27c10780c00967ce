"""Data subject selectors (pure) and the store's hold on every column of clicks."""

from __future__ import annotations

import pytest

from core.errors import ValidationError
from core.ids import new_click_id
from core.privacy import ERASED_CLICK_FIELDS, SELECTORS, SOURCES, Subject, ip_forms, subject_of
from core.store.privacy import StoredClick

CLICK_ID = new_click_id(1_700_000_000_000)


@pytest.mark.parametrize(("given", "expected"), [
    ({"click_id": CLICK_ID}, Subject(kind="click_id", value=CLICK_ID)),
    ({"ip": " 203.0.113.7 "}, Subject(kind="ip", value="203.0.113.7")),
    ({"ip": "2001:DB8::0:1"}, Subject(kind="ip", value="2001:db8::1")),
    ({"customer_id": "cus_1"}, Subject(kind="customer_id", value="cus_1")),
    ({"email_sha256": "AB" * 32}, Subject(kind="email_sha256", value="ab" * 32)),
])
def test_one_selector_in_canonical_form(given, expected):
    assert subject_of(**given) == expected


@pytest.mark.parametrize(("given", "code"), [
    ({}, "invalid_subject"),
    ({"click_id": CLICK_ID, "ip": "203.0.113.7"}, "invalid_subject"),
    ({"customer_id": "c", "email_sha256": "ab" * 32}, "invalid_subject"),
    ({"click_id": CLICK_ID.upper()}, "invalid_click_id"),
    ({"click_id": CLICK_ID[:-1]}, "invalid_click_id"),
    ({"ip": "203.0.113.256"}, "invalid_ip"),
    ({"ip": "203.0.113.0/24"}, "invalid_ip"),
    ({"customer_id": ""}, "invalid_customer_id"),
    ({"email_sha256": "ab" * 31 + "zz"}, "invalid_email_sha256"),
])
def test_bad_selectors(given, code):
    with pytest.raises(ValidationError) as e:
        subject_of(**given)
    assert e.value.code == code


@pytest.mark.parametrize(("ip", "forms"), [
    ("198.51.100.1", {"198.51.100.1", "::ffff:c633:6401"}),
    ("::ffff:198.51.100.1", {"198.51.100.1", "::ffff:c633:6401"}),
    ("2001:db8::1", {"2001:db8::1"}),
])
def test_an_address_is_matched_in_every_form_it_is_stored_in(ip, forms):
    assert set(ip_forms(ip)) == forms


def test_every_selector_names_its_sources():
    assert set(SOURCES) == set(SELECTORS)
    assert all(f in StoredClick.__struct_fields__ for f in ERASED_CLICK_FIELDS)


async def test_an_export_holds_every_column_of_clicks(pool):
    columns = await pool.fetch(
        "select column_name from information_schema.columns where table_schema = 'public'"
        " and table_name = 'clicks' order by ordinal_position")
    assert list(StoredClick.__struct_fields__) == [c["column_name"] for c in columns], (
        "a new clicks column must be exported (StoredClick) and, if personal, erased (ERASED_CLICK_FIELDS)")


async def test_every_personal_column_of_clicks_is_erased(pool):
    kept = {"click_id", "clicked_at", "org_id", "offer_id", "affiliate_id", "link_id", "outcome", "country",
            "device_type", "ingested_at"}
    assert set(StoredClick.__struct_fields__) - kept == set(ERASED_CLICK_FIELDS)
