"""A stats query: what GET /v1/stats asks, checked and planned (pure: no I/O, no HTTP).

``plan_stats`` turns the raw query into a ``StatsPlan``: the range as UTC instants, the
coverage (``core.stats_time``: which pieces of the range come from the daily, the hourly
and the 15-minute rows, and at which local offset), the cube, the filters with
the caller's pins, the measures the caller may see, the full sort order and the cursor.
``api.stats_queries`` turns the plan into one SQL statement.

The plan, and why it is exact:

- range: local dates (``from`` 00:00 to 00:00 after ``to``) or ISO datetimes with an
  offset on 15-minute boundaries, half-open; at most 400 local days (31 grouped by hour).
- coverage: every 15-minute bucket of the range is read exactly once, from the hourly
  row of its UTC hour when that hour is whole inside the range and inside one time key
  (always at a whole-hour offset; at +05:30 or +05:45 unless grouped by hour or the hour
  holds the local midnight that starts a key), else from its own 15-minute row; each
  row read lies inside one key, so ``bucket + offset`` puts all of it in the right
  local hour, day, ISO week or month. Whole UTC days that lie inside one key (every
  day of a UTC query by day; any day of a query without a time key) come from the
  daily rows instead, so a month's query reads ~30 rows per group, not ~720.
- cube: the smallest of offer / affiliate / full that holds every dimension grouped,
  filtered or pinned by the caller's role; all three hold the same totals.
- money: per currency, never summed across currencies; a ``currency`` filter chooses
  which currencies' money is shown, never which clicks or conversions count. Sorting by
  money needs exactly one currency.
- roles: an affiliate key is pinned to its affiliate, sees no revenue or profit and may
  not group or filter by advertiser; an advertiser key is pinned to its advertiser and
  sees no payout, profit or epc. Asking for a hidden measure is 403 ``forbidden_measure``.
- pages: rows in the sort order, then every group key ascending, so the order is total;
  the cursor holds the last row's sort values and a fingerprint of the query, and is
  refused with any other query.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import uuid
from decimal import Decimal
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from core.errors import Forbidden, ValidationError
from core.permissions import Scope
from core.stats_time import EARLIEST, LATEST, Piece, coverage, local_days, local_midnight, zone_named

TIME_DIMENSIONS = ("hour", "day", "week", "month")
DIMENSIONS = ("offer", "advertiser", "affiliate", "goal", "country", "device", "sub1")
# The key and filter name of each dimension in the API.
KEY_NAMES = {"offer": "offer_id", "advertiser": "advertiser_id", "affiliate": "affiliate_id",
             "goal": "goal", "country": "country", "device": "device", "sub1": "sub1"}
MEASURES = ("clicks", "unique_clicks", "conversions", "conversion_rate", "epc", "revenue", "payout", "profit")
MONEY_MEASURES = frozenset({"revenue", "payout", "profit", "epc"})
CUBES = (
    ("offer", frozenset({"offer", "advertiser"})),
    ("affiliate", frozenset({"offer", "advertiser", "affiliate", "goal"})),
    ("full", frozenset(DIMENSIONS)),
)
HIDDEN_MEASURES = {"affiliate": frozenset({"revenue", "profit"}), "advertiser": frozenset({"payout", "profit", "epc"})}
MAX_RANGE_DAYS = 400
MAX_HOUR_RANGE_DAYS = 31
DEFAULT_DAYS = 7
MAX_FILTER_VALUES = 100
# What each sort key's value is, for the cursor: the SQL compares typed values.
SORT_KINDS = {"hour": "datetime", "day": "date", "week": "date", "month": "date",
              **{d: "text" for d in DIMENSIONS}, "clicks": "int", "unique_clicks": "int", "conversions": "int",
              "revenue": "int", "payout": "int", "profit": "int", "conversion_rate": "decimal", "epc": "decimal"}
_UUID_FILTERS = frozenset({"offer", "advertiser", "affiliate"})
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_PATTERNS = {"country": (re.compile(r"[A-Z]{2}"), "an ISO 3166 code such as US")}

Param = Annotated[str, Meta(max_length=4000)]


class StatsRequest(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, rename={"from_": "from"}):
    """The query string of GET /v1/stats, as sent (comma lists are split by ``plan_stats``)."""

    from_: Annotated[str, Meta(max_length=40, description="YYYY-MM-DD (local, inclusive) or ISO datetime")] | None = None
    to: Annotated[str, Meta(max_length=40, description="YYYY-MM-DD (local, inclusive) or ISO datetime (exclusive)")] | None = None
    tz: Annotated[str, Meta(max_length=64, description="IANA time zone")] = "UTC"
    group_by: Annotated[str, Meta(max_length=200, description="hour|day|week|month, offer, advertiser, affiliate,"
                                  " goal, country, device, sub1")] = ""
    offer_id: Param | None = None
    advertiser_id: Param | None = None
    affiliate_id: Param | None = None
    goal: Param | None = None
    country: Param | None = None
    device: Param | None = None
    sub1: Param | None = None
    currency: Param | None = None
    measures: Annotated[str, Meta(max_length=200)] | None = None
    sort: Annotated[str, Meta(max_length=200, description="a key or measure, '-' for descending")] | None = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100
    cursor: Annotated[str, Meta(max_length=2000)] | None = None


class SortKey(msgspec.Struct, frozen=True):
    name: str
    descending: bool = False


class StatsPlan(msgspec.Struct, frozen=True, kw_only=True):
    start: dt.datetime  # UTC, inclusive
    end: dt.datetime  # UTC, exclusive
    tz: str
    pieces: list[Piece]
    time_dimension: str | None
    dimensions: tuple[str, ...]  # the others, in the order asked
    group_by: tuple[str, ...]  # as asked
    filters: dict[str, tuple[str, ...]]  # dimension -> values, the role's pin included
    currencies: tuple[str, ...]
    cube: str
    measures: tuple[str, ...]
    sort: tuple[SortKey, ...]  # the whole order: asked, then every group key
    limit: int
    after: tuple[Any, ...] | None  # the sort values of the previous page's last row
    fingerprint: str


def role_of(scope: Scope) -> str | None:
    return "affiliate" if scope.affiliate_id else "advertiser" if scope.advertiser_id else None


def plan_stats(request: StatsRequest, scope: Scope, now: dt.datetime) -> StatsPlan:
    zone = zone_named(request.tz)
    start, end = _range(request, zone, now)
    time_dimension, dimensions = _group_by(request.group_by)
    hidden = HIDDEN_MEASURES.get(role_of(scope) or "", frozenset())
    filters = _filters(request, scope)
    if scope.affiliate_id is not None and ("advertiser" in dimensions or request.advertiser_id is not None):
        raise Forbidden("forbidden_dimension", "an affiliate key may not group or filter by advertiser")
    limit_days = MAX_HOUR_RANGE_DAYS if time_dimension == "hour" else MAX_RANGE_DAYS
    if (days := local_days(start, end, zone)) > limit_days:
        raise ValidationError("range_too_large", f"from..to spans {days} days; at most {limit_days}"
                                                 f"{' when grouped by hour' if time_dimension == 'hour' else ''}")
    currencies = _split(request.currency, "currency", _CURRENCY, "an ISO 4217 code such as USD")
    keys = ((time_dimension,) if time_dimension else ()) + dimensions
    plan = StatsPlan(
        start=start, end=end, tz=zone.key, pieces=coverage(start, end, zone, time_dimension), time_dimension=time_dimension,
        dimensions=dimensions, group_by=tuple(_split(request.group_by)), filters=filters,
        currencies=tuple(currencies), cube=_cube(set(dimensions) | set(filters)),
        measures=_measures(request.measures, hidden), sort=_sort(request.sort, keys, hidden, currencies),
        limit=request.limit, after=None, fingerprint="",
    )
    fingerprint = _fingerprint(plan)
    after = None if request.cursor is None else decode_cursor(request.cursor, fingerprint, plan.sort)
    return msgspec.structs.replace(plan, fingerprint=fingerprint, after=after)


def _range(request: StatsRequest, zone: Any, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    today = now.astimezone(zone).date()
    start = _instant(request.from_, "from", zone, False) or local_midnight(today - dt.timedelta(DEFAULT_DAYS - 1), zone)
    end = _instant(request.to, "to", zone, True) or local_midnight(today + dt.timedelta(1), zone)
    if start >= end:
        raise ValidationError("invalid_range", "from must be before to")
    if start < EARLIEST or end > LATEST:
        raise ValidationError("invalid_range", f"from and to must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}")
    return start, end


def _instant(text: str | None, field: str, zone: Any, day_after: bool) -> dt.datetime | None:
    if text is None:
        return None
    try:
        if _DATE.fullmatch(text):
            day = dt.date.fromisoformat(text)
            return local_midnight(day + dt.timedelta(days=1) if day_after else day, zone)
        value = dt.datetime.fromisoformat(text)
        if value.tzinfo is None:
            raise ValidationError("invalid_date", f"{field}: a datetime needs an offset, such as {text}+00:00")
        instant = value.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):
        raise ValidationError("invalid_date", f"{field}: {text!r} is neither YYYY-MM-DD nor an ISO datetime") from None
    if instant.microsecond or instant.second or instant.minute % 15:
        raise ValidationError("misaligned_time", f"{field}: a datetime must fall on a 15-minute boundary")
    return instant


def _split(text: str | None, field: str = "", pattern: re.Pattern | None = None, what: str = "") -> list[str]:
    values = [v.strip() for v in (text or "").split(",") if v.strip()]
    if len(values) > MAX_FILTER_VALUES:
        raise ValidationError("invalid_filter", f"{field}: at most {MAX_FILTER_VALUES} values")
    for value in values if pattern else ():
        if not pattern.fullmatch(value):
            raise ValidationError("invalid_filter", f"{field}: {value!r} is not {what}")
    return values


def _group_by(text: str) -> tuple[str | None, tuple[str, ...]]:
    names = _split(text)
    for name in names:
        if name not in TIME_DIMENSIONS and name not in DIMENSIONS:
            raise ValidationError("invalid_group_by", f"group_by: unknown dimension {name!r}; one of"
                                                      f" {', '.join(TIME_DIMENSIONS + DIMENSIONS)}")
    if len(set(names)) != len(names):
        raise ValidationError("invalid_group_by", "group_by: a dimension is named twice")
    times = [n for n in names if n in TIME_DIMENSIONS]
    if len(times) > 1:
        raise ValidationError("invalid_group_by", f"group_by: at most one of hour, day, week, month (got {', '.join(times)})")
    return (times[0] if times else None), tuple(n for n in names if n in DIMENSIONS)


def _filters(request: StatsRequest, scope: Scope) -> dict[str, tuple[str, ...]]:
    filters: dict[str, tuple[str, ...]] = {}
    for dimension, field in KEY_NAMES.items():
        values = _split(getattr(request, field), field, *_PATTERNS.get(dimension, (None, "")))
        if dimension in _UUID_FILTERS:
            values = [_uuid(v, field) for v in values]
        if values:
            filters[dimension] = tuple(dict.fromkeys(values))
        pin = getattr(scope, field, None)
        if pin is not None:  # the role's own id: asking for others matches nothing
            filters[dimension] = tuple(v for v in filters.get(dimension, (str(pin),)) if v == str(pin))
    return filters


def _uuid(text: str, field: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise ValidationError("invalid_filter", f"{field}: {text!r} is not an id") from None


def _cube(used: set[str]) -> str:
    return next(name for name, dims in CUBES if used <= dims)


def _measures(text: str | None, hidden: frozenset[str]) -> tuple[str, ...]:
    if text is None:
        return tuple(m for m in MEASURES if m not in hidden)
    names = _split(text)
    for name in names:
        _check_measure(name, hidden)
    if not names:
        raise ValidationError("invalid_measure", "measures: name at least one")
    return tuple(dict.fromkeys(names))


def _check_measure(name: str, hidden: frozenset[str]) -> None:
    if name not in MEASURES:
        raise ValidationError("invalid_measure", f"measures: unknown measure {name!r}; one of {', '.join(MEASURES)}")
    if name in hidden:
        raise Forbidden("forbidden_measure", f"this role may not see {name}")


def _sort(text: str | None, keys: tuple[str, ...], hidden: frozenset[str], currencies: list[str]) -> tuple[SortKey, ...]:
    asked = []
    items = _split(text)
    if len(items) > 3:
        raise ValidationError("invalid_sort", "sort: at most 3 keys")
    for item in items:
        name = item.removeprefix("-")
        if name in keys:
            pass
        elif name in TIME_DIMENSIONS or name in DIMENSIONS:
            raise ValidationError("invalid_sort", f"sort: {name} is not in group_by")
        elif name in MEASURES:
            _check_measure(name, hidden)
            if name in MONEY_MEASURES and len(currencies) != 1:
                raise ValidationError("invalid_sort", f"sort: {name} needs exactly one currency filter (money is never"
                                                      " summed across currencies)")
        else:
            raise ValidationError("invalid_sort", f"sort: unknown key {name!r}")
        asked.append(SortKey(name, item.startswith("-")))
    named = {k.name for k in asked}
    if len(named) != len(asked):
        raise ValidationError("invalid_sort", "sort: a key is named twice")
    return tuple(asked) + tuple(SortKey(k) for k in keys if k not in named)


def _fingerprint(plan: StatsPlan) -> str:
    shape = [plan.start, plan.end, plan.tz, plan.group_by, sorted(plan.filters.items()), plan.currencies,
             plan.measures, plan.sort]
    return hashlib.sha256(msgspec.json.encode(shape)).hexdigest()[:16]


def encode_cursor(plan: StatsPlan, values: tuple[Any, ...]) -> str:
    plain = [v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else str(v) if isinstance(v, Decimal) else v
             for v in values]
    return base64.urlsafe_b64encode(msgspec.json.encode([plan.fingerprint, plain])).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str, sort: tuple[SortKey, ...]) -> tuple[Any, ...]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, values = msgspec.json.decode(raw, type=tuple[str, list[Any]])
        if made_for == fingerprint and len(values) == len(sort):
            return tuple(_typed(v, SORT_KINDS[k.name]) for v, k in zip(values, sort))
    except (ValueError, TypeError, ArithmeticError, msgspec.DecodeError):
        raise ValidationError("invalid_cursor", "cursor is not one this API returned") from None
    raise ValidationError("invalid_cursor", "cursor belongs to another query (from, to, tz, group_by, filters,"
                                            " measures and sort must stay the same)")


def _typed(value: Any, kind: str) -> Any:
    if kind == "datetime":
        return msgspec.convert(value, dt.datetime)
    if kind == "date":
        return msgspec.convert(value, dt.date)
    if kind == "decimal":
        return Decimal(msgspec.convert(value, str))
    return msgspec.convert(value, int if kind == "int" else str)
