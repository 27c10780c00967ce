"""Money: ISO 4217 currencies and exact amounts in integer minor units.

An amount is always an ``int`` of minor units (cents for USD, yen for JPY, fils for KWD)
next to its currency code. Conversions go through ``decimal.Decimal``; binary float
arithmetic never touches an amount. A float that arrives from JSON is read through its
shortest ``repr`` (``19.99`` is ``"19.99"``), which is what the sender wrote.

Parsing rules for ``parse_amount_minor``:

- strings are plain decimals: ASCII digits with an optional ``.`` and fraction, no sign,
  no spaces, no grouping, no exponent;
- the value must be representable in the currency's minor unit. Fraction digits past the
  currency's exponent are accepted only when they are zeros (``"10.50"`` and ``"10.500"``
  USD are both 1050; ``"10.555"`` USD and ``"1.5"`` JPY are errors): they carry no value,
  and JSON encoders write ``100.0`` for a whole JPY amount;
- the result is below ``AMOUNT_MINOR_LIMIT`` (10**15 minor units: ten trillion dollars),
  which keeps every amount and every sum of a few thousand amounts inside a Postgres
  ``bigint``.
"""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, Context, Decimal

from core.errors import ValidationError

AMOUNT_MINOR_LIMIT = 10**15
AMOUNT_TEXT_MAX_LENGTH = 32
_AMOUNT_RE = re.compile(r"[0-9]+(?:\.[0-9]+)?")
# Wide enough that scaling any accepted amount is exact (the default context keeps 28
# digits and would round "1.000…0001" to a whole number).
_EXACT = Context(prec=64)

# Active ISO 4217 codes and their minor-unit exponents. Funds, metals and testing codes
# without a minor unit (XAU, XDR, XTS, XXX, ...) are not currencies an amount can be in.
_EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND"
_EXPONENT_4 = "CLF UYW"
_EXPONENT_2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD "
    "BTN BWP BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP "
    "ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR "
    "JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU "
    "MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR "
    "RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS "
    "TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
)
CURRENCY_EXPONENTS: dict[str, int] = {
    code: exponent
    for exponent, codes in ((0, _EXPONENT_0), (2, _EXPONENT_2), (3, _EXPONENT_3), (4, _EXPONENT_4))
    for code in codes.split()
}


def currency_exponent(currency: str) -> int:
    """The number of minor-unit digits of ``currency``; ValidationError if it is not one."""
    if not isinstance(currency, str) or currency not in CURRENCY_EXPONENTS:
        raise ValidationError("invalid_currency", "currency must be an upper-case ISO 4217 code such as USD")
    return CURRENCY_EXPONENTS[currency]


def parse_amount_minor(value: str | int | float, currency: str) -> int:
    """Convert a non-negative decimal amount in major units to integer minor units."""
    exponent = currency_exponent(currency)
    amount = _to_decimal(value)
    if amount >= Decimal(AMOUNT_MINOR_LIMIT).scaleb(-exponent, context=_EXACT):
        raise _invalid_amount(f"amount must be below {format_minor(AMOUNT_MINOR_LIMIT, currency)} {currency}")
    minor = amount.scaleb(exponent, context=_EXACT)
    if minor != minor.to_integral_value():
        raise _invalid_amount(f"amount has more than {exponent} decimal places, the minor unit of {currency}")
    return int(minor)


def format_minor(amount_minor: int, currency: str) -> str:
    """Render minor units as a plain decimal string in major units: 1050 USD is ``"10.50"``."""
    exponent = currency_exponent(currency)
    if not isinstance(amount_minor, int) or isinstance(amount_minor, bool):
        raise _invalid_amount("amount_minor must be an integer")
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**exponent)
    if exponent == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:0{exponent}d}"


def round_half_even_minor(value: Decimal) -> int:
    """Round a Decimal count of minor units (such as 1050 × 12.5 %) half-even to an int."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise _invalid_amount("amount must be a finite Decimal of minor units")
    return int(value.to_integral_value(rounding=ROUND_HALF_EVEN))


def _to_decimal(value: str | int | float) -> Decimal:
    if isinstance(value, bool):
        raise _invalid_amount("amount must be a decimal string or a number")
    if isinstance(value, int):
        amount = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise _invalid_amount("amount must be a finite number")
        amount = Decimal(repr(value))
    elif isinstance(value, str):
        if len(value) > AMOUNT_TEXT_MAX_LENGTH or not _AMOUNT_RE.fullmatch(value):
            raise _invalid_amount("amount must be a plain decimal such as 10 or 10.50")
        amount = Decimal(value)
    else:
        raise _invalid_amount("amount must be a decimal string or a number")
    if amount < 0:
        raise _invalid_amount("amount must not be negative")
    return amount


def _invalid_amount(message: str) -> ValidationError:
    return ValidationError("invalid_amount", message)
