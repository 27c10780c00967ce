"""Time coverage of a stats query: which rollup rows serve which part of ``[start, end)``,
and the local UTC offset each part is read at.

The rollups keep UTC buckets of 15 minutes (``stats_*_15m``) and of an hour
(``stats_*_1h``, the same numbers summed per UTC hour). Since 2023 every IANA zone's
offset is a multiple of 15 minutes and changes only on a 15-minute boundary, so every
local hour, day, week or month is an exact union of 15-minute buckets. A UTC hour read
at a whole-hour offset lies inside one local hour, so hourly rows serve it for any
grouping. A zone such as Asia/Kolkata (+05:30) or Asia/Kathmandu (+05:45) splits every
UTC hour between two local hours, so grouped by hour its quarters come from the
15-minute rows; grouped by day, week or month only the one UTC hour around each local
midnight that starts a key is split, and every other hour still comes whole from the
hourly rows. The ragged ends of a range that starts or ends off the hour come from the
15-minute rows too.

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


class Piece(msgspec.Struct, frozen=True):
    """``[start, end)`` read from the hourly rows (``hourly``) or the 15-minute rows, at ``offset_s``."""

    start: dt.datetime
    end: dt.datetime
    offset_s: int
    hourly: bool


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
    day, week, month or None): hourly rows for every whole UTC hour that lies inside one
    key, 15-minute rows for the rest (the ragged ends, and the hours a key boundary cuts)."""
    pieces = []
    for lo, hi, offset in offset_segments(start, end, zone):
        first_hour, last_hour = _ceil_hour(lo), _floor_hour(hi)
        if first_hour >= last_hour or (unit == "hour" and offset % 3600):
            pieces.append(Piece(lo, hi, offset, False))
            continue
        if lo < first_hour:
            pieces.append(Piece(lo, first_hour, offset, False))
        hourly_from = first_hour
        for cut in _cut_hours(first_hour, last_hour, offset, unit):
            if hourly_from < cut:
                pieces.append(Piece(hourly_from, cut, offset, True))
            pieces.append(Piece(cut, cut + HOUR, offset, False))
            hourly_from = cut + HOUR
        if hourly_from < last_hour:
            pieces.append(Piece(hourly_from, last_hour, offset, True))
        if last_hour < hi:
            pieces.append(Piece(last_hour, hi, offset, False))
    return pieces


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
