"""What makes a catalog value acceptable: names, emails, money, currencies, countries.

Pure checks shared by every store module that writes catalog rows. Each returns the
normalized value or raises ``ValidationError`` with a stable code.
"""

from __future__ import annotations

import re
from typing import Iterable

from core.errors import ValidationError

NAME_MAX_LENGTH = 200
EMAIL_MAX_LENGTH = 320
MONEY_MAX_MINOR = 10**15  # far above any real payout; keeps bigint arithmetic safe
ATTRIBUTION_WINDOW_MIN_S = 60
ATTRIBUTION_WINDOW_MAX_S = 365 * 24 * 3600

# ISO 4217 active codes (funds and precious metals left out: nobody pays affiliates in XAU).
CURRENCIES = frozenset(
    """AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD
    BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR
    FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD
    JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT
    MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
    QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS
    TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER
    ZAR ZMW ZWG""".split()
)

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_COUNTRY_RE = re.compile(r"[A-Z]{2}")


def validate_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("invalid_name", f"{what} must not be empty")
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError("invalid_name", f"{what} longer than {NAME_MAX_LENGTH} characters")
    if _CONTROL_RE.search(name):
        raise ValidationError("invalid_name", f"{what} contains control characters")
    return name.strip()


def validate_email(email: str | None) -> str | None:
    if email is None:
        return None
    if len(email) > EMAIL_MAX_LENGTH or not _EMAIL_RE.fullmatch(email):
        raise ValidationError("invalid_email", "email must look like name@example.com")
    return email


def validate_currency(code: str) -> str:
    if not isinstance(code, str) or code not in CURRENCIES:
        raise ValidationError("invalid_currency", f"currency must be an ISO 4217 code such as USD, got {code!r}")
    return code


def validate_money_minor(amount: int, what: str = "amount") -> int:
    if type(amount) is not int or not 0 <= amount <= MONEY_MAX_MINOR:
        raise ValidationError("invalid_money", f"{what} must be an integer number of minor units between 0 and {MONEY_MAX_MINOR}")
    return amount


def validate_attribution_window_s(seconds: int) -> int:
    if type(seconds) is not int or not ATTRIBUTION_WINDOW_MIN_S <= seconds <= ATTRIBUTION_WINDOW_MAX_S:
        raise ValidationError(
            "invalid_attribution_window",
            f"attribution_window_s must be between {ATTRIBUTION_WINDOW_MIN_S} and {ATTRIBUTION_WINDOW_MAX_S}",
        )
    return seconds


def validate_countries(codes: Iterable[str], what: str = "country list") -> list[str]:
    """Upper-case ISO 3166-1 alpha-2 codes, de-duplicated and sorted."""
    out = set()
    for code in codes:
        if not isinstance(code, str) or not _COUNTRY_RE.fullmatch(code):
            raise ValidationError("invalid_country", f"{what} holds {code!r}; use two upper-case letters such as US")
        out.add(code)
    return sorted(out)


def validate_geo(geo_allow: Iterable[str], geo_deny: Iterable[str]) -> tuple[list[str], list[str]]:
    allow = validate_countries(geo_allow, "geo_allow")
    deny = validate_countries(geo_deny, "geo_deny")
    both = set(allow) & set(deny)
    if both:
        raise ValidationError("invalid_country", f"countries both allowed and denied: {', '.join(sorted(both))}")
    return allow, deny
