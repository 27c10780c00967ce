import pytest

from core import catalog_rules as rules
from core.errors import ValidationError


@pytest.mark.parametrize("code", ["usd", "US", "", "USDX", "XYZ", "U$D", None])
def test_bad_currencies(code):
    with pytest.raises(ValidationError):
        rules.validate_currency(code)


@pytest.mark.parametrize("code", ["USD", "EUR", "JPY", "KWD"])
def test_good_currencies(code):
    assert rules.validate_currency(code) == code


@pytest.mark.parametrize("amount", [-1, 1.5, 1.0, True, rules.MONEY_MAX_MINOR + 1, "10"])
def test_bad_money(amount):
    with pytest.raises(ValidationError):
        rules.validate_money_minor(amount)


@pytest.mark.parametrize("codes", [["us"], ["USA"], [""], ["U1"], ["GB", "de"]])
def test_bad_countries(codes):
    with pytest.raises(ValidationError):
        rules.validate_countries(codes)


def test_countries_are_deduplicated_and_sorted_and_overlap_is_refused():
    assert rules.validate_countries(["US", "GB", "US"]) == ["GB", "US"]
    with pytest.raises(ValidationError):
        rules.validate_geo(["US"], ["US"])


@pytest.mark.parametrize("name", ["", "   ", "a" * 201, "bad\x00name", "tab\tname"])
def test_bad_names(name):
    with pytest.raises(ValidationError):
        rules.validate_name(name)


def test_names_are_trimmed():
    assert rules.validate_name("  Acme ") == "Acme"
