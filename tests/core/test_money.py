from decimal import Decimal

import pytest

from core.errors import ValidationError
from core.money import (
    AMOUNT_MINOR_LIMIT,
    CURRENCY_EXPONENTS,
    format_minor,
    parse_amount_minor,
    round_half_even_minor,
)


@pytest.mark.parametrize(
    ("value", "currency", "expected"),
    [
        ("10", "USD", 1000),
        ("10.5", "USD", 1050),
        ("10.55", "USD", 1055),
        ("10.50", "USD", 1050),
        ("10.500", "USD", 1050),
        ("0", "USD", 0),
        ("0.01", "USD", 1),
        ("007.10", "EUR", 710),
        ("100", "JPY", 100),
        ("100.00", "JPY", 100),
        ("1.234", "KWD", 1234),
        ("1.2", "BHD", 1200),
        ("1.0001", "CLF", 10001),
        ("250000", "VND", 250000),
        ("9999999999999.99", "USD", AMOUNT_MINOR_LIMIT - 1),
        (19.99, "USD", 1999),
        (0.1, "USD", 10),
        (1e3, "USD", 100000),
        (100.0, "JPY", 100),
        (1.005, "KWD", 1005),
        (-0.0, "USD", 0),
        (10, "USD", 1000),
        (0, "XOF", 0),
        (5000, "KRW", 5000),
    ],
)
def test_parse_amount_minor_accepts(value, currency, expected):
    assert parse_amount_minor(value, currency) == expected


@pytest.mark.parametrize(
    ("value", "currency"),
    [
        ("10.555", "USD"),
        ("1.5", "JPY"),
        ("1.2345", "KWD"),
        ("1.000000000000000000000000000001", "USD"),  # 31 digits: no rounding to a whole cent
        ("1e3", "USD"),
        ("1E3", "USD"),
        ("NaN", "USD"),
        ("nan", "USD"),
        ("inf", "USD"),
        ("Infinity", "USD"),
        ("-1", "USD"),
        ("+1", "USD"),
        (" 1", "USD"),
        ("1 ", "USD"),
        ("1\n", "USD"),
        ("1,00", "USD"),
        ("1_000", "USD"),
        ("", "USD"),
        (".5", "USD"),
        ("5.", "USD"),
        ("1.2.3", "USD"),
        ("ten", "USD"),
        ("\u0661\u0662", "USD"),  # Arabic-Indic digits
        ("0x10", "USD"),
        ("1" * 33, "USD"),
        ("10000000000000", "USD"),  # 10**15 minor units
        ("1000000000000000", "JPY"),
        (float("nan"), "USD"),
        (float("inf"), "USD"),
        (float("-inf"), "USD"),
        (-1, "USD"),
        (-0.01, "USD"),
        (1e-05, "USD"),
        (1e16, "USD"),
        (10**15, "JPY"),
        (10**100, "USD"),
        (True, "USD"),
        (None, "USD"),
        ([1], "USD"),
        (Decimal("1"), "USD"),
    ],
)
def test_parse_amount_minor_rejects_amount(value, currency):
    with pytest.raises(ValidationError) as caught:
        parse_amount_minor(value, currency)
    assert caught.value.code == "invalid_amount"
    assert "amount" in caught.value.message


@pytest.mark.parametrize("currency", ["usd", "Usd", "US", "USDD", "XXX", "XAU", "XTS", "ABC", "", " USD", None, 840])
def test_parse_amount_minor_rejects_currency(currency):
    with pytest.raises(ValidationError) as caught:
        parse_amount_minor("10", currency)
    assert caught.value.code == "invalid_currency"
    assert "currency" in caught.value.message


def test_currency_is_checked_before_the_amount():
    with pytest.raises(ValidationError) as caught:
        parse_amount_minor("NaN", "usd")
    assert caught.value.code == "invalid_currency"


@pytest.mark.parametrize(
    ("currency", "exponent"),
    [("USD", 2), ("EUR", 2), ("GBP", 2), ("CHF", 2), ("CNY", 2), ("INR", 2), ("BRL", 2),
     ("JPY", 0), ("KRW", 0), ("VND", 0), ("CLP", 0), ("ISK", 0), ("UGX", 0), ("XAF", 0), ("XOF", 0),
     ("BHD", 3), ("IQD", 3), ("JOD", 3), ("KWD", 3), ("LYD", 3), ("OMR", 3), ("TND", 3), ("CLF", 4)],
)
def test_currency_exponents(currency, exponent):
    assert CURRENCY_EXPONENTS[currency] == exponent


def test_currency_table_is_well_formed():
    assert len(CURRENCY_EXPONENTS) >= 150
    assert all(len(code) == 3 and code.isascii() and code.isupper() for code in CURRENCY_EXPONENTS)


@pytest.mark.parametrize(
    ("amount_minor", "currency", "expected"),
    [(1050, "USD", "10.50"), (1, "USD", "0.01"), (0, "USD", "0.00"), (-1050, "EUR", "-10.50"),
     (100, "JPY", "100"), (1234, "KWD", "1.234"), (5, "KWD", "0.005"), (10001, "CLF", "1.0001")],
)
def test_format_minor(amount_minor, currency, expected):
    assert format_minor(amount_minor, currency) == expected


@pytest.mark.parametrize("value", ["0.01", "10.5", "19.99", "123456.78", "0"])
def test_format_minor_round_trips_with_parse(value):
    assert parse_amount_minor(format_minor(parse_amount_minor(value, "USD"), "USD"), "USD") == parse_amount_minor(
        value, "USD"
    )


@pytest.mark.parametrize(("amount_minor", "currency"), [(1.5, "USD"), ("10", "USD"), (True, "USD"), (10, "usd")])
def test_format_minor_rejects(amount_minor, currency):
    with pytest.raises(ValidationError):
        format_minor(amount_minor, currency)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("131.25"), 131),
        (Decimal("0.5"), 0),
        (Decimal("1.5"), 2),
        (Decimal("2.5"), 2),
        (Decimal("2.5000001"), 3),
        (Decimal("2.4999999"), 2),
        (Decimal("-2.5"), -2),
        (Decimal("-3.5"), -4),
        (Decimal("1050") * Decimal("0.125"), 131),  # 131.25
        (Decimal("999") * Decimal("0.15"), 150),  # 149.85
        (Decimal("12345678901234567890123456789012.5"), 12345678901234567890123456789012),
        (Decimal("7"), 7),
    ],
)
def test_round_half_even_minor(value, expected):
    assert round_half_even_minor(value) == expected


@pytest.mark.parametrize("value", [Decimal("NaN"), Decimal("Infinity"), Decimal("-Infinity"), 2.5, "2.5"])
def test_round_half_even_minor_rejects(value):
    with pytest.raises(ValidationError):
        round_half_even_minor(value)
