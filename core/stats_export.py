"""Stats rows (``GET /v1/stats``) as export lines.

JSON Lines holds each row exactly as the API returns it. CSV is flat: the row's keys
(the time key, then each dimension grouped by), its counts (conversions one column per
status), then its money, one line per currency: a row with money in two currencies is
two lines that repeat the keys and counts (money is never summed across currencies; sum
counts over the lines of one currency, or over the JSON Lines, not over every line). A
row without money (none earned, or money not asked) is one line with empty money fields.
Text cells (a sub1, a goal) get the same formula guard as every CSV export.
"""

from __future__ import annotations

from typing import Any

from core.export_format import csv_safe
from core.stats import KEY_NAMES, StatsPlan

_STATUSES = ("pending", "approved", "rejected", "reversed", "total")
_MONEY = {"revenue": "revenue_minor", "payout": "payout_minor", "profit": "profit_minor", "epc": "epc"}


def stats_columns(plan: StatsPlan) -> tuple[str, ...]:
    keys = ((plan.time_dimension,) if plan.time_dimension else ()) + tuple(KEY_NAMES[d] for d in plan.dimensions)
    asked = set(plan.measures)
    counts = [m for m in ("clicks", "unique_clicks") if m in asked]
    if "conversions" in asked:
        counts += [f"conversions_{s}" for s in _STATUSES] + ["fraud_flagged"]
    if "conversion_rate" in asked:
        counts.append("conversion_rate")
    money = [field for measure, field in _MONEY.items() if measure in asked]
    return keys + tuple(counts) + (("currency", *money) if money else ())


def stats_csv_lines(row: dict[str, Any], columns: tuple[str, ...]) -> list[list[Any]]:
    """One API row (as builtins) as CSV lines in ``columns``' order."""
    flat: dict[str, Any] = dict(row.get("key", {}))
    flat.update({k: v for k, v in row.items() if k not in ("key", "conversions", "money")})
    flat.update({f"conversions_{s}": n for s, n in (row.get("conversions") or {}).items()})
    moneys = row.get("money") or [{}]
    return [[csv_safe({**flat, **money}.get(c)) for c in columns] for money in moneys]
