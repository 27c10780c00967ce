"""Time coverage of a stats query: which rollup rows serve which part of ``[start, end)``,
and the local UTC offset each part is read at.

The rollups keep UTC buckets of 15 minutes (``stats_*_15m``), of an hour (``stats_*_1h``)
and of a day (``stats_*_1d``), each grain the same numbers summed coarser. Since 2023 every IANA zone's
offset is a multiple of 15 minutes and changes only on a 15-minute boundary, so every
local hour, day, week or month is an exact union of 15-minute buckets. A UTC hour read
at a whole-hour offset lies inside one local hour, so hourly rows serve it for any
grouping. A zone such as Asia/Kolkata (+05:30) or Asia/Kathmandu (+05:45) splits every
UTC hour between two local hours, so grouped by hour its quarters come from the
15-minute rows; grouped by day, week or month only the one UTC hour around each local
midnight that starts a key is split, and every other hour still comes whole from the
hourly rows. The ragged ends of a range that starts or ends off the hour come from the
15-minute rows too. A whole UTC day inside an hourly piece whose every hour falls in one
key comes from the daily rows: in UTC (and any zone while its offset is 0) every day of
a query by day, week or month; in any zone the days of a query without a time key, and
the days of a query by week or month that no local week or month starts in. A query
over 30 days thus reads about 30 rows per group instead of 720.

The zone rules come from Python's ``zoneinfo`` alone: ``coverage`` cuts the range into
pieces of one offset each, and the SQL reads local time as ``bucket + offset`` of its
piece. Postgres bundles its own, older tz database (no America/Coyhaique, Paraguay
still on daylight saving time), and two rule books would disagree about some days.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

import msgspec

from core.errors import ValidationError

UTC = dt.timezone.utc
QUARTER = dt.timedelta(minutes=15)
HOUR = dt.timedelta(hours=1)
# Before 2023 some zones still changed offset at 00:01 local (America/St_Johns until
# 2011, Antarctica/Casey until 2022), which no 15-minute bucket can split.
EARLIEST = dt.datetime(2023, 1, 1, tzinfo=UTC)
LATEST = dt.datetime(2100, 1, 1, tzinfo=UTC)
_PROBE = dt.timedelta(hours=6)  # no zone changes its offset twice within 6 hours


DAY = dt.timedelta(days=1)
Grain = str  # "15m" | "1h" | "1d": the rollup tables' suffix


class Piece(msgspec.Struct, frozen=True):
    """``[start, end)`` read from the rollup rows of ``grain``, at ``offset_s``."""

    start: dt.datetime
    end: dt.datetime
    offset_s: int
    grain: Grain


def zone_named(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone ``name``; ValidationError ``invalid_tz`` naming the field otherwise."""
    try:
        if name and name == name.strip() and ".." not in name and not name.startswith("/"):
            return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    raise ValidationError("invalid_tz", f"tz: {name!r} is not an IANA time zone name such as Europe/Paris")


def offset_s(instant: dt.datetime, zone: zoneinfo.ZoneInfo) -> int:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None
    return int(offset.total_seconds())


def local_midnight(day: dt.date, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The instant local ``day`` begins (a midnight skipped by DST: the instant the day's clock starts)."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone).astimezone(UTC)


def local_days(start: dt.datetime, end: dt.datetime, zone: zoneinfo.ZoneInfo) -> int:
    """How many local calendar days ``[start, end)`` touches."""
    first = start.astimezone(zone).date()
    last = (end - dt.timedelta(microseconds=1)).astimezone(zone).date()
    return (last - first).days + 1


def offset_segments(
    start: dt.datetime, end: dt.datetime, zone: zoneinfo.ZoneInfo,
) -> list[tuple[dt.datetime, dt.datetime, int]]:
    """``[start, end)`` cut where the zone's offset changes: ``(start, end, offset_s)`` each.

    ``start`` and ``end`` are on 15-minute boundaries. A change found off a 15-minute
    boundary, or an offset not a multiple of 15 minutes, is a ValidationError.
    """
    segments = []
    seg_start, seg_offset = start, _checked_offset(start, zone)
    probe, last = start, end - QUARTER
    while probe < last:
        ahead = min(probe + _PROBE, last)
        if offset_s(ahead, zone) == seg_offset:
            probe = ahead
            continue
        change = _first_change(probe, ahead, seg_offset, zone)
        if offset_s(change - dt.timedelta(microseconds=1), zone) != seg_offset:
            raise _unsupported(zone)
        segments.append((seg_start, change, seg_offset))
        seg_start, seg_offset, probe = change, _checked_offset(change, zone), change
    segments.append((seg_start, end, seg_offset))
    return segments


def coverage(start: dt.datetime, end: dt.datetime, zone: zoneinfo.ZoneInfo, unit: str | None = "hour") -> list[Piece]:
    """The pieces that cover ``[start, end)`` exactly once, for time keys of ``unit`` (hour,
    day, week, month or None): daily rows for every whole UTC day that lies inside one
    key, hourly rows for every other whole UTC hour that does, 15-minute rows for the rest
    (the ragged ends, and the hours a key boundary cuts)."""
    pieces = []
    for piece in _hours_and_quarters(start, end, zone, unit):
        pieces.extend(_with_days(piece, unit) if piece.grain == "1h" else [piece])
    return pieces


def _hours_and_quarters(start: dt.datetime, end: dt.datetime, zone: zoneinfo.ZoneInfo, unit: str | None) -> list[Piece]:
    pieces = []
    for lo, hi, offset in offset_segments(start, end, zone):
        first_hour, last_hour = _ceil_hour(lo), _floor_hour(hi)
        if first_hour >= last_hour or (unit == "hour" and offset % 3600):
            pieces.append(Piece(lo, hi, offset, "15m"))
            continue
        if lo < first_hour:
            pieces.append(Piece(lo, first_hour, offset, "15m"))
        hourly_from = first_hour
        for cut in _cut_hours(first_hour, last_hour, offset, unit):
            if hourly_from < cut:
                pieces.append(Piece(hourly_from, cut, offset, "1h"))
            pieces.append(Piece(cut, cut + HOUR, offset, "15m"))
            hourly_from = cut + HOUR
        if hourly_from < last_hour:
            pieces.append(Piece(hourly_from, last_hour, offset, "1h"))
        if last_hour < hi:
            pieces.append(Piece(last_hour, hi, offset, "15m"))
    return pieces


def _with_days(piece: Piece, unit: str | None) -> list[Piece]:
    """``piece`` (hourly) with its runs of whole UTC days that each lie inside one key
    (read at the piece's offset) taken from the daily rows."""
    out, hourly_from = [], piece.start
    day = _ceil_day(piece.start)
    while day + DAY <= piece.end:
        if not _day_in_one_key(day, piece.offset_s, unit):
            day += DAY
            continue
        run_end = day + DAY
        while run_end + DAY <= piece.end and _day_in_one_key(run_end, piece.offset_s, unit):
            run_end += DAY
        if hourly_from < day:
            out.append(Piece(hourly_from, day, piece.offset_s, "1h"))
        out.append(Piece(day, run_end, piece.offset_s, "1d"))
        hourly_from = day = run_end
    if hourly_from < piece.end:
        out.append(Piece(hourly_from, piece.end, piece.offset_s, "1h"))
    return out


def _day_in_one_key(day: dt.datetime, offset: int, unit: str | None) -> bool:
    """Whether the UTC day starting at ``day``, read at ``offset``, lies inside one key of ``unit``."""
    if unit is None:
        return True
    if unit == "hour":
        return False
    shift = dt.timedelta(seconds=offset)
    first, last = (day + shift), (day + DAY - QUARTER + shift)
    if unit == "day":
        return first.date() == last.date()
    if unit == "week":
        return first.date() - dt.timedelta(days=first.weekday()) == last.date() - dt.timedelta(days=last.weekday())
    return (first.year, first.month) == (last.year, last.month)


def _ceil_day(instant: dt.datetime) -> dt.datetime:
    floor = instant.replace(hour=0, minute=0, second=0, microsecond=0)
    return floor if floor == instant else floor + DAY


def _cut_hours(start: dt.datetime, end: dt.datetime, offset: int, unit: str | None) -> list[dt.datetime]:
    """The UTC hours in ``[start, end)`` that a local key boundary cuts (read at ``offset``)."""
    if unit is None or offset % 3600 == 0:
        return []
    shift = dt.timedelta(seconds=offset)
    day, last = (start + shift).date() + dt.timedelta(days=1), (end + shift).date()
    cuts = []
    while day <= last:
        if unit == "day" or (unit == "week" and day.weekday() == 0) or (unit == "month" and day.day == 1):
            midnight = dt.datetime.combine(day, dt.time(0), tzinfo=UTC) - shift
            if start < midnight < end:
                cuts.append(_floor_hour(midnight))
        day += dt.timedelta(days=1)
    return cuts


def _first_change(before: dt.datetime, after: dt.datetime, offset: int, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """The first 15-minute instant in ``(before, after]`` whose offset is not ``offset``."""
    lo, hi = 0, (after - before) // QUARTER  # offset at lo is `offset`, at hi it is not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if offset_s(before + mid * QUARTER, zone) == offset:
            lo = mid
        else:
            hi = mid
    return before + hi * QUARTER


def _checked_offset(instant: dt.datetime, zone: zoneinfo.ZoneInfo) -> int:
    offset = offset_s(instant, zone)
    if offset % 900:
        raise _unsupported(zone)
    return offset


def _unsupported(zone: zoneinfo.ZoneInfo) -> ValidationError:
    return ValidationError("invalid_tz", f"tz: {zone.key} has an offset change off a 15-minute boundary in this range")


def _floor_hour(instant: dt.datetime) -> dt.datetime:
    return instant.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(instant: dt.datetime) -> dt.datetime:
    floor = _floor_hour(instant)
    return floor if floor == instant else floor + HOUR
