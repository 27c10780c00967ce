"""core.stats and core.stats_time: checking and planning a stats query, by tables of cases."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo

import msgspec
import pytest

from core.errors import Forbidden, ValidationError
from core.permissions import UNSCOPED, Scope
from core.stats import StatsRequest, encode_cursor, plan_stats
from core.stats_measures import conversion_rate, epc, ratio
from core.stats_time import Piece, coverage, offset_segments

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 20, 15, 7, tzinfo=UTC)
AFF = uuid.UUID("00000000-0000-4000-8000-00000000000a")
ADV = uuid.UUID("00000000-0000-4000-8000-00000000000b")
AFFILIATE = Scope(affiliate_id=AFF)
ADVERTISER = Scope(advertiser_id=ADV)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


def plan(scope: Scope = UNSCOPED, **query):
    query = {("from" if name == "from_" else name): value for name, value in query.items()}
    return plan_stats(msgspec.convert(query, StatsRequest, strict=False), scope, NOW)


BAD = [
    ({"tz": "Mars/Olympus"}, ValidationError, "invalid_tz"),
    ({"tz": "../../etc/passwd"}, ValidationError, "invalid_tz"),
    ({"tz": ""}, ValidationError, "invalid_tz"),
    ({"from": "2026-11-02", "to": "2026-11-01"}, ValidationError, "invalid_range"),
    ({"from": "2026-11-01T00:00:00+00:00", "to": "2026-11-01T00:00:00+00:00"}, ValidationError, "invalid_range"),
    ({"from": "2020-01-01", "to": "2020-01-02"}, ValidationError, "invalid_range"),
    ({"from": "2025-01-01", "to": "2026-02-05"}, ValidationError, "range_too_large"),
    ({"from": "2026-10-01", "to": "2026-11-01", "group_by": "hour"}, ValidationError, "range_too_large"),
    ({"from": "2026-13-01"}, ValidationError, "invalid_date"),
    ({"from": "01/11/2026"}, ValidationError, "invalid_date"),
    ({"from": "9999-12-31", "to": "9999-12-31"}, ValidationError, "invalid_date"),
    ({"from": "2026-11-01T00:00:00"}, ValidationError, "invalid_date"),
    ({"from": "2026-11-01T00:10:00+00:00"}, ValidationError, "misaligned_time"),
    ({"to": "2026-11-01T00:00:30+00:00"}, ValidationError, "misaligned_time"),
    ({"group_by": "day,week"}, ValidationError, "invalid_group_by"),
    ({"group_by": "offer,offer"}, ValidationError, "invalid_group_by"),
    ({"group_by": "planet"}, ValidationError, "invalid_group_by"),
    ({"measures": "clicks,likes"}, ValidationError, "invalid_measure"),
    ({"measures": ","}, ValidationError, "invalid_measure"),
    ({"offer_id": "not-an-id"}, ValidationError, "invalid_filter"),
    ({"country": "usa"}, ValidationError, "invalid_filter"),
    ({"currency": "usd"}, ValidationError, "invalid_filter"),
    ({"sort": "offer"}, ValidationError, "invalid_sort"),
    ({"sort": "likes"}, ValidationError, "invalid_sort"),
    ({"sort": "-revenue"}, ValidationError, "invalid_sort"),
    ({"sort": "revenue", "currency": "USD,EUR"}, ValidationError, "invalid_sort"),
    ({"sort": "clicks,-clicks"}, ValidationError, "invalid_sort"),
    ({"cursor": "%%%"}, ValidationError, "invalid_cursor"),
    ({"cursor": "WyJ4IiwgW11d"}, ValidationError, "invalid_cursor"),  # ["x", []]: another query's
]


@pytest.mark.parametrize("query, error, code", BAD)
def test_bad_queries_are_refused_with_a_code(query, error, code):
    with pytest.raises(error) as raised:
        plan(**query)
    assert raised.value.code == code, raised.value.message


ROLE_REFUSALS = [
    (AFFILIATE, {"measures": "clicks,revenue"}, "forbidden_measure"),
    (AFFILIATE, {"measures": "profit"}, "forbidden_measure"),
    (AFFILIATE, {"group_by": "advertiser"}, "forbidden_dimension"),
    (AFFILIATE, {"advertiser_id": str(ADV)}, "forbidden_dimension"),
    (AFFILIATE, {"sort": "-revenue", "currency": "USD"}, "forbidden_measure"),
    (ADVERTISER, {"measures": "payout"}, "forbidden_measure"),
    (ADVERTISER, {"measures": "epc"}, "forbidden_measure"),
    (ADVERTISER, {"measures": "clicks,profit"}, "forbidden_measure"),
]


@pytest.mark.parametrize("scope, query, code", ROLE_REFUSALS)
def test_roles_may_not_ask_for_what_they_may_not_see(scope, query, code):
    with pytest.raises(Forbidden) as raised:
        plan(scope, **query)
    assert raised.value.code == code


RANGES = [
    # (query, start, end)
    ({}, "2026-11-14T00:00:00+00:00", "2026-11-21T00:00:00+00:00"),  # the last 7 days, today included
    ({"tz": "Asia/Kolkata"}, "2026-11-14T00:00:00+05:30", "2026-11-21T00:00:00+05:30"),
    ({"from": "2026-11-01", "to": "2026-11-01", "tz": "America/New_York"},
     "2026-11-01T00:00:00-04:00", "2026-11-02T00:00:00-05:00"),  # 25 hours
    ({"from": "2026-03-08", "to": "2026-03-08", "tz": "America/New_York"},
     "2026-03-08T00:00:00-05:00", "2026-03-09T00:00:00-04:00"),  # 23 hours
    ({"from": "2026-11-01", "to": "2026-11-30", "tz": "Asia/Kathmandu"},
     "2026-11-01T00:00:00+05:45", "2026-12-01T00:00:00+05:45"),
    ({"from": "2026-11-01T10:15:00+00:00", "to": "2026-11-01T12:00:00+01:00"},
     "2026-11-01T10:15:00+00:00", "2026-11-01T11:00:00+00:00"),
    ({"from": "2026-09-06", "to": "2026-09-06", "tz": "America/Santiago"},  # midnight skipped: the day starts at 01:00
     "2026-09-06T01:00:00-03:00", "2026-09-07T00:00:00-03:00"),
    ({"from": "2025-10-13", "to": "2026-11-16"}, "2025-10-13T00:00:00+00:00", "2026-11-17T00:00:00+00:00"),  # 400
]


@pytest.mark.parametrize("query, start, end", RANGES)
def test_ranges_resolve_to_utc_instants(query, start, end):
    planned = plan(**query)
    assert (planned.start, planned.end) == (at(start), at(end))


def _hours(start: str, end: str, offset_s: int, hourly: bool) -> Piece:
    return Piece(at(start), at(end), offset_s, "1h" if hourly else "15m")


def _days(start: str, end: str, offset_s: int) -> Piece:
    return Piece(at(start), at(end), offset_s, "1d")


COVERAGE = [
    ("UTC", "2026-11-01T00:00+00:00", "2026-11-02T00:00+00:00",
     [_hours("2026-11-01T00:00+00:00", "2026-11-02T00:00+00:00", 0, True)]),
    ("UTC", "2026-11-01T00:15+00:00", "2026-11-01T03:30+00:00", [
        _hours("2026-11-01T00:15+00:00", "2026-11-01T01:00+00:00", 0, False),
        _hours("2026-11-01T01:00+00:00", "2026-11-01T03:00+00:00", 0, True),
        _hours("2026-11-01T03:00+00:00", "2026-11-01T03:30+00:00", 0, False),
    ]),
    ("UTC", "2026-11-01T00:15+00:00", "2026-11-01T00:45+00:00",
     [_hours("2026-11-01T00:15+00:00", "2026-11-01T00:45+00:00", 0, False)]),
    ("Asia/Kolkata", "2026-11-01T00:00+05:30", "2026-11-02T00:00+05:30",
     [_hours("2026-11-01T00:00+05:30", "2026-11-02T00:00+05:30", 19800, False)]),
    ("Asia/Kathmandu", "2026-11-01T00:00+05:45", "2026-11-02T00:00+05:45",
     [_hours("2026-11-01T00:00+05:45", "2026-11-02T00:00+05:45", 20700, False)]),
    ("America/New_York", "2026-11-01T00:00-04:00", "2026-11-02T00:00-05:00", [
        _hours("2026-11-01T00:00-04:00", "2026-11-01T01:00-05:00", -14400, True),
        _hours("2026-11-01T01:00-05:00", "2026-11-02T00:00-05:00", -18000, True),
    ]),
    ("Australia/Lord_Howe", "2026-10-04T00:00+10:30", "2026-10-05T00:00+11:00", [  # 02:00 +10:30 → 02:30 +11:00
        _hours("2026-10-03T13:30+00:00", "2026-10-03T15:30+00:00", 37800, False),
        _hours("2026-10-03T15:30+00:00", "2026-10-03T16:00+00:00", 39600, False),
        _hours("2026-10-03T16:00+00:00", "2026-10-04T13:00+00:00", 39600, True),
    ]),
]


@pytest.mark.parametrize("tz, start, end, pieces", COVERAGE)
def test_coverage_reads_hourly_rows_only_for_whole_local_hours(tz, start, end, pieces):
    assert coverage(at(start), at(end), zoneinfo.ZoneInfo(tz)) == pieces


BY_DAY = [
    ("Asia/Kolkata", "day", "2026-11-01T00:00+05:30", "2026-11-03T00:00+05:30", [
        _hours("2026-11-01T00:00+05:30", "2026-11-01T00:30+05:30", 19800, False),  # 18:30Z..19:00Z
        _hours("2026-10-31T19:00+00:00", "2026-11-01T18:00+00:00", 19800, True),
        _hours("2026-11-01T18:00+00:00", "2026-11-01T19:00+00:00", 19800, False),  # holds midnight 18:30Z
        _hours("2026-11-01T19:00+00:00", "2026-11-02T18:00+00:00", 19800, True),
        _hours("2026-11-02T18:00+00:00", "2026-11-02T18:30+00:00", 19800, False),
    ]),
    ("Asia/Kathmandu", "month", "2026-11-30T00:00+05:45", "2026-12-02T00:00+05:45", [
        _hours("2026-11-29T18:15+00:00", "2026-11-29T19:00+00:00", 20700, False),
        _hours("2026-11-29T19:00+00:00", "2026-11-30T18:00+00:00", 20700, True),
        _hours("2026-11-30T18:00+00:00", "2026-11-30T19:00+00:00", 20700, False),  # 1 December starts at 18:15Z
        _hours("2026-11-30T19:00+00:00", "2026-12-01T18:00+00:00", 20700, True),
        _hours("2026-12-01T18:00+00:00", "2026-12-01T18:15+00:00", 20700, False),
    ]),
    ("Asia/Kolkata", None, "2026-11-01T00:00+05:30", "2026-11-03T00:00+05:30", [  # no key: whole UTC days daily
        _hours("2026-11-01T00:00+05:30", "2026-11-01T00:30+05:30", 19800, False),
        _hours("2026-10-31T19:00+00:00", "2026-11-01T00:00+00:00", 19800, True),
        _days("2026-11-01T00:00+00:00", "2026-11-02T00:00+00:00", 19800),
        _hours("2026-11-02T00:00+00:00", "2026-11-02T18:00+00:00", 19800, True),
        _hours("2026-11-02T18:00+00:00", "2026-11-02T18:30+00:00", 19800, False),
    ]),
    ("UTC", "week", "2026-11-01T00:00+00:00", "2026-11-15T00:00+00:00",
     [_days("2026-11-01T00:00+00:00", "2026-11-15T00:00+00:00", 0)]),
    ("UTC", "day", "2026-11-01T06:00+00:00", "2026-11-04T00:00+00:00", [
        _hours("2026-11-01T06:00+00:00", "2026-11-02T00:00+00:00", 0, True),
        _days("2026-11-02T00:00+00:00", "2026-11-04T00:00+00:00", 0),
    ]),
    # +01:00: a UTC day straddles two local days, so by day it stays hourly; by week only
    # the UTC day holding local Monday's midnight (Sunday 23:00Z) does.
    ("Europe/Paris", "day", "2026-11-09T00:00+01:00", "2026-11-11T00:00+01:00",
     [_hours("2026-11-08T23:00+00:00", "2026-11-10T23:00+00:00", 3600, True)]),
    ("Europe/Paris", "week", "2026-11-08T00:00+01:00", "2026-11-19T00:00+01:00", [  # Sunday 8th to Wednesday 18th
        _hours("2026-11-07T23:00+00:00", "2026-11-09T00:00+00:00", 3600, True),  # holds Monday 9th 00:00 local
        _days("2026-11-09T00:00+00:00", "2026-11-15T00:00+00:00", 3600),
        _hours("2026-11-15T00:00+00:00", "2026-11-16T00:00+00:00", 3600, True),  # holds Monday 16th 00:00 local
        _days("2026-11-16T00:00+00:00", "2026-11-18T00:00+00:00", 3600),
        _hours("2026-11-18T00:00+00:00", "2026-11-18T23:00+00:00", 3600, True),
    ]),
    ("UTC", "hour", "2026-11-01T00:00+00:00", "2026-11-03T00:00+00:00",
     [_hours("2026-11-01T00:00+00:00", "2026-11-03T00:00+00:00", 0, True)]),
]


@pytest.mark.parametrize("tz, unit, start, end, pieces", BY_DAY)
def test_coverage_by_day_splits_only_the_hours_a_key_boundary_cuts(tz, unit, start, end, pieces):
    assert coverage(at(start), at(end), zoneinfo.ZoneInfo(tz), unit) == pieces


@pytest.mark.parametrize("unit", ["hour", "day", "week", "month", None])
@pytest.mark.parametrize("tz", ["UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe",
                                "America/Santiago", "Europe/London", "Pacific/Chatham"])
def test_coverage_covers_every_quarter_once_at_its_own_offset(tz, unit):
    zone = zoneinfo.ZoneInfo(tz)
    start, end = at("2026-01-01T00:00+00:00"), at("2027-01-01T00:00+00:00")
    pieces = coverage(start, end, zone, unit)
    assert pieces[0].start == start and pieces[-1].end == end
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:]))
    for piece in pieces:
        assert piece.offset_s == piece.start.astimezone(zone).utcoffset().total_seconds()
        assert piece.offset_s == (piece.end - dt.timedelta(minutes=15)).astimezone(zone).utcoffset().total_seconds()
        if piece.grain == "1d":  # whole UTC days, each inside one key
            assert piece.start.hour == piece.start.minute == piece.end.hour == piece.end.minute == 0
            local = piece.start + dt.timedelta(seconds=piece.offset_s)
            while local < piece.end + dt.timedelta(seconds=piece.offset_s):
                assert _key(local, unit) == _key(local + dt.timedelta(hours=23, minutes=45), unit)
                local += dt.timedelta(days=1)
        if piece.grain == "1h":  # every hour of it inside one key
            assert piece.start.minute == piece.end.minute == 0
            local = piece.start + dt.timedelta(seconds=piece.offset_s)
            while local < piece.end + dt.timedelta(seconds=piece.offset_s):
                assert _key(local, unit) == _key(local + dt.timedelta(minutes=45), unit)
                local += dt.timedelta(hours=1)
    segments = offset_segments(start, end, zone)
    assert len(segments) == len({(s[0], s[2]) for s in segments})


def _key(local: dt.datetime, unit: str | None):
    if unit is None:
        return None
    if unit == "hour":
        return local.replace(minute=0)
    day = local.date()
    return day if unit == "day" else day - dt.timedelta(day.weekday()) if unit == "week" else day.replace(day=1)


def test_the_cube_is_the_smallest_holding_every_dimension_used():
    assert plan().cube == "offer"
    assert plan(group_by="day,offer", advertiser_id=str(ADV)).cube == "offer"
    assert plan(group_by="goal").cube == "affiliate"
    assert plan(AFFILIATE).cube == "affiliate"  # its pin
    assert plan(ADVERTISER).cube == "offer"
    assert plan(group_by="offer", sub1="a").cube == "full"
    assert plan(country="US").cube == "full"


def test_pins_replace_filters_and_another_id_matches_nothing():
    other = str(uuid.uuid4())
    assert plan(AFFILIATE).filters == {"affiliate": (str(AFF),)}
    assert plan(AFFILIATE, affiliate_id=other).filters == {"affiliate": ()}
    assert plan(ADVERTISER, advertiser_id=f"{other},{ADV}").filters == {"advertiser": (str(ADV),)}
    assert plan(offer_id=other.upper()).filters == {"offer": (other,)}


def test_measures_default_to_what_the_role_may_see():
    assert "revenue" in plan().measures and "profit" in plan().measures
    assert set(plan(AFFILIATE).measures) == {"clicks", "unique_clicks", "conversions", "conversion_rate", "epc",
                                             "payout"}
    assert set(plan(ADVERTISER).measures) == {"clicks", "unique_clicks", "conversions", "conversion_rate",
                                              "revenue"}


def test_sort_is_total_asked_keys_first_then_every_group_key():
    planned = plan(group_by="day,offer,country", sort="-clicks,country")
    assert [(k.name, k.descending) for k in planned.sort] == [
        ("clicks", True), ("country", False), ("day", False), ("offer", False)]
    assert [k.name for k in plan(group_by="offer", sort="-revenue", currency="EUR").sort] == ["revenue", "offer"]


def test_a_cursor_is_bound_to_its_query():
    first = plan(group_by="day,offer", from_="2026-11-01", to="2026-11-07", sort="-clicks")
    cursor = encode_cursor(first, (12, dt.date(2026, 11, 3), "~" + str(AFF)))
    again = plan(group_by="day,offer", from_="2026-11-01", to="2026-11-07", sort="-clicks", cursor=cursor, limit=7)
    assert again.after == (12, dt.date(2026, 11, 3), "~" + str(AFF))
    for changed in ({"to": "2026-11-08"}, {"sort": "clicks"}, {"country": "US"}, {"tz": "Europe/Paris"}):
        query = {"group_by": "day,offer", "from_": "2026-11-01", "to": "2026-11-07", "sort": "-clicks", **changed}
        with pytest.raises(ValidationError, match="another query"):
            plan(**query, cursor=cursor)


MEASURES = [
    (conversion_rate(1, 3), "0.333333"),
    (conversion_rate(2, 3), "0.666667"),
    (conversion_rate(0, 5), "0.000000"),
    (conversion_rate(5, 0), None),
    (conversion_rate(7, 2), "3.500000"),
    (ratio(1, 8_000_000, 6), "0.000000"),  # 0.000000125 → half-even down
    (ratio(3, 8_000_000, 6), "0.000000"),  # 0.000000375 → 0.000000 (below half)
    (ratio(5, 10_000_000, 6), "0.000000"),  # exactly half, even stays
    (ratio(15, 10_000_000, 6), "0.000002"),  # exactly half, odd rounds up
    (epc(1000, 3, "USD"), "3.3333"),  # $10.00 / 3 clicks
    (epc(1000, 3, "JPY"), "333.33"),
    (epc(1000, 3, "KWD"), "0.33333"),
    (epc(5, 2000, "USD"), "0.0000"),  # 0.000025
    (epc(15, 2000, "USD"), "0.0001"),  # 0.000075 → 0.0001
    (epc(-1000, 3, "USD"), "-3.3333"),
    (epc(100, 0, "USD"), None),
]


@pytest.mark.parametrize("got, expected", MEASURES)
def test_derived_measures_round_half_even_once(got, expected):
    assert got == expected
