"""Data retention: what to drop or delete today, from plain values.

Bounds (enforced by the ``organizations`` table's checks and by
``core.store.organizations.update_org_data_settings``):

- clicks: 30 to 730 days, 90 by default. Below 30 days an attribution window would
  outlive the clicks it needs; past two years raw clicks are a liability, and the
  rollups keep the numbers.
- conversions: 365 to 3650 days, 730 by default. Conversions are money records: at
  least a year (the audit trail of what was paid), at most ten.

A retention of ``n`` days keeps every row from midnight UTC ``n`` days before today on:
a row is kept at least ``n`` days and at most ``n + 1``, and the plan is the same all
day, so running it twice a day changes nothing the second time.

Clicks sit in daily partitions. A partition is dropped whole once it lies entirely
before the cutoff of the organization that keeps clicks longest (never inside the
30-day floor, never today or later). Organizations that keep clicks for less get their
own older rows deleted from the partitions that stay.

A partition is never dropped while a click stream still holds an entry not yet
ingested that could land in it: ingesting it would recreate the partition (or miss it).
An entry's clicks carry the edge's clock and its id carries Redis's; a click may also
reach the stream late from an edge's spool. ``STREAM_ENTRY_SLACK`` widens the guard by
that much: an entry with id time ``t`` holds the partitions from ``t - slack`` on.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable, Sequence

import msgspec

CLICKS_RETENTION_DAYS_MIN = 30
CLICKS_RETENTION_DAYS_MAX = 730
CLICKS_RETENTION_DAYS_DEFAULT = 90
CONVERSIONS_RETENTION_DAYS_MIN = 365
CONVERSIONS_RETENTION_DAYS_MAX = 3650
CONVERSIONS_RETENTION_DAYS_DEFAULT = 730

STREAM_ENTRY_SLACK = dt.timedelta(days=1)

_DAY = dt.timedelta(days=1)


class OrgRetention(msgspec.Struct, frozen=True):
    org_id: str
    clicks_days: int
    conversions_days: int


class OrgCutoff(msgspec.Struct, frozen=True):
    """Rows of ``org_id`` older than ``before`` are past retention."""

    org_id: str
    before: dt.datetime


class RetentionPlan(msgspec.Struct, frozen=True, kw_only=True):
    drop_click_days: list[dt.date]
    # Past retention, kept because a stream may still hold clicks for them.
    held_click_days: list[dt.date]
    # Organizations with a shorter retention than the longest, whose older rows are
    # deleted from the partitions that stay.
    click_cutoffs: list[OrgCutoff]
    # Every organization's conversions cutoff. Applied once the conversions table exists.
    conversion_cutoffs: list[OrgCutoff]


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


def cutoff(today: dt.date, days: int) -> dt.datetime:
    """The start of what a retention of ``days`` keeps."""
    return day_start(today - dt.timedelta(days=days))


def plan_retention(
    today: dt.date,
    click_days: Iterable[dt.date],
    orgs: Sequence[OrgRetention],
    oldest_unprocessed: dt.datetime | None,
) -> RetentionPlan:
    """What retention does today.

    ``click_days`` are the days that have a clicks partition; ``oldest_unprocessed`` is
    the id time of the oldest click stream entry not yet ingested (``None``: none).
    With no organization at all nothing is dropped: there is no retention to apply.
    """
    clicks_days = {o.org_id: max(o.clicks_days, CLICKS_RETENTION_DAYS_MIN) for o in orgs}
    longest = max(clicks_days.values(), default=None)
    drop: list[dt.date] = []
    held: list[dt.date] = []
    if longest is not None:
        boundary = cutoff(today, longest)
        held_from = oldest_unprocessed - STREAM_ENTRY_SLACK if oldest_unprocessed else None
        for day in sorted(set(click_days)):
            end = day_start(day) + _DAY
            if day >= today or end > boundary:
                continue
            if held_from is not None and held_from <= end:
                held.append(day)
            else:
                drop.append(day)
    return RetentionPlan(
        drop_click_days=drop,
        held_click_days=held,
        click_cutoffs=[
            OrgCutoff(org_id, cutoff(today, days)) for org_id, days in sorted(clicks_days.items()) if days < longest
        ],
        conversion_cutoffs=[
            OrgCutoff(o.org_id, cutoff(today, max(o.conversions_days, CONVERSIONS_RETENTION_DAYS_MIN)))
            for o in sorted(orgs, key=lambda o: o.org_id)
        ],
    )
