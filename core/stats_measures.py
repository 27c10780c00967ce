"""The derived stats measures, exact: ratios of integers rounded half-even once, to a
fixed number of places, and written as decimal strings (never floats)."""

from __future__ import annotations

from core.money import CURRENCY_EXPONENTS

CONVERSION_RATE_PLACES = 6


def conversion_rate(approved: int, clicks: int) -> str | None:
    """Approved conversions per click, 6 places; None without clicks."""
    return ratio(approved, clicks, CONVERSION_RATE_PLACES) if clicks > 0 else None


def epc(payout_minor: int, clicks: int, currency: str) -> str | None:
    """Earnings per click in major units, to the currency's exponent + 2 places; None without clicks."""
    exponent = CURRENCY_EXPONENTS.get(currency, 2)
    return ratio(payout_minor, clicks * 10**exponent, exponent + 2) if clicks > 0 else None


def ratio(numerator: int, denominator: int, places: int) -> str:
    """``numerator / denominator`` rounded half-even to ``places`` decimals (denominator > 0)."""
    scaled, remainder = divmod(abs(numerator) * 10**places, denominator)
    if 2 * remainder > denominator or (2 * remainder == denominator and scaled % 2):
        scaled += 1
    whole, fraction = divmod(scaled, 10**places)
    sign = "-" if numerator < 0 and scaled else ""
    return f"{sign}{whole}.{fraction:0{places}d}" if places else f"{sign}{whole}"
