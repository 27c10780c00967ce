"""The raw window (pure): the recent span whose clicks and conversions are written as
rows, not only as rollups.

It ends now and starts on a whole UTC hour, so every 15-minute and hourly rollup row is
either wholly inside it (summed from its raw rows) or wholly before it. It covers the
last ``raw_days`` days, less whole hours from its start while it would hold more than
``raw_clicks`` clicks. ``None``: no raw window (``raw_clicks`` 0, or even the current
hour holds more than that).
"""

from __future__ import annotations

import datetime as dt

HOUR = dt.timedelta(hours=1)


def _floor_hour(at: dt.datetime) -> dt.datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def raw_window_start(counts: dict[dt.datetime, int], now: dt.datetime, raw_days: int,
                     raw_clicks: int) -> dt.datetime | None:
    if raw_clicks <= 0 or raw_days <= 0:
        return None
    since = now - dt.timedelta(days=raw_days)
    earliest = max(_floor_hour(since) + (HOUR if since != _floor_hour(since) else dt.timedelta(0)),
                   _floor_hour(min(counts)))
    per_hour: dict[dt.datetime, int] = {}
    for bucket, n in counts.items():
        per_hour[_floor_hour(bucket)] = per_hour.get(_floor_hour(bucket), 0) + n
    start, held = _floor_hour(now), per_hour.get(_floor_hour(now), 0)
    if held > raw_clicks:
        return None
    while start - HOUR >= earliest and held + per_hour.get(start - HOUR, 0) <= raw_clicks:
        start -= HOUR
        held += per_hour.get(start, 0)
    return start
