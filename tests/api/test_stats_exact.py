"""GET /v1/stats against the rows underneath it: clicks written by insert_clicks and
conversions by the conversion worker's apply_postbacks (the real write path, rollups
included), then every number the API answers compared with sums over the raw clicks and
conversions, re-bucketed in Python with zoneinfo. Hypothesis picks the traffic and the
zone; fixed cases pin the zones that break naive designs (DST, +05:30, +05:45)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
import zoneinfo
from collections import Counter, defaultdict

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from core.ids import new_click_id
from core.models import PostbackRecord
from core.store.clicks import insert_clicks
from tests.api.traffic import click_at
from workers.conversion_apply import apply_postbacks

UTC = dt.timezone.utc
START = dt.datetime(2026, 10, 31, tzinfo=UTC)  # America/New_York leaves DST on 2026-11-01
SPAN_MIN = 3 * 24 * 60
ZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe", "Pacific/Chatham",
         "America/St_Johns", "Europe/Berlin", "Pacific/Kiritimati", "Pacific/Niue"]
VISITORS = [("198.51.100.1", "Mozilla/5.0 A"), ("198.51.100.1", "Mozilla/5.0 B"), ("203.0.113.9", "Mozilla/5.0 A"),
            (None, None)]
PATHS = [("approved",), ("pending",), ("rejected",), ("pending", "approved"), ("pending", "rejected"),
         ("approved", "rejected")]
QUERY = {"from": "2026-10-30", "to": "2026-11-04"}


async def _offers(pool, tenant, currencies: tuple[str, ...]) -> list[str]:
    """Fresh offers (visitors and sub1 values are per offer, so examples never share them)."""
    ids = []
    async with pool.acquire() as conn:
        for currency in currencies:
            offer = await conn.fetchval(
                "insert into offers (org_id, advertiser_id, name, destination_url, currency, revenue_minor,"
                " payout_minor, attribution_window_s) values ($1, $2, 'Offer', 'https://shop.example/?c={click_id}',"
                " $3, 700, 450, 2592000) returning id", uuid.UUID(tenant.org_id), uuid.UUID(tenant.advertiser_id),
                currency)
            await conn.execute("insert into links (org_id, offer_id, affiliate_id, token) values ($1, $2, $3, $4)",
                               uuid.UUID(tenant.org_id), offer, uuid.UUID(tenant.affiliate_id),
                               secrets.token_urlsafe(12))
            ids.append(str(offer))
    return ids


def _postback(tenant, click_id: str, external_id: str, status: str, at: dt.datetime) -> PostbackRecord:
    ts_ms = int(at.timestamp() * 1000)
    return PostbackRecord(
        postback_id=new_click_id(ts_ms), ts_ms=ts_ms, org_id=tenant.org_id, advertiser_id=tenant.advertiser_id,
        source="postback", actor="postback:token", click_id=click_id, external_id=external_id, status=status,
        correlation_id=f"corr-{external_id}")


async def _write(pool, settings, tenant, offers, clicks_spec, conversions_spec):
    """Clicks in time order (in up to three batches), then each conversion's postbacks."""
    link = {o: await pool.fetchval("select id from links where offer_id = $1", uuid.UUID(o)) for o in offers}
    records = []
    for minute, visitor, offer, country, device, sub1 in sorted(clicks_spec, key=lambda c: c[0]):
        ip, user_agent = VISITORS[visitor]
        records.append(click_at(START + dt.timedelta(minutes=minute), tenant.org_id, offers[offer],
                                tenant.affiliate_id, str(link[offers[offer]]), ip=ip, user_agent=user_agent,
                                country=country, device_type=device, sub1=sub1))
    third = max(1, len(records) // 3)
    for i in range(0, len(records), third):
        async with pool.acquire() as conn, conn.transaction():
            await insert_clicks(conn, records[i:i + third])
    steps: list[list[PostbackRecord]] = [[], []]
    for n, (click_index, path, delay_min) in enumerate(conversions_spec):
        click = records[click_index % len(records)]
        clicked = dt.datetime.fromtimestamp(click.ts_ms / 1000, UTC)
        external_id = f"order-{uuid.uuid4().hex[:8]}-{n}"
        for step, status in enumerate(path):
            at = clicked + dt.timedelta(minutes=delay_min + 90 * step, seconds=30)
            steps[step].append(_postback(tenant, click.click_id, external_id, status, at))
    now = START + dt.timedelta(days=5)
    for batch in steps:
        async with pool.acquire() as conn, conn.transaction():
            await apply_postbacks(conn, batch, settings=settings, now=now)
    attributed = await pool.fetchval("select count(*) from conversions where offer_id = any($1)",
                                     [uuid.UUID(o) for o in offers])
    assert attributed == len(conversions_spec)  # every one tied to its click, none waiting
    return records, [p for batch in steps for p in batch]


def _visitor(ip, user_agent) -> str:
    return hashlib.md5(f"{ip or ''}|{user_agent or ''}".encode()).hexdigest()


async def _expected(pool, offers: list[str], zone: str, keys: tuple[str, ...]) -> dict:
    """Per key (local day and the dimensions named): the API's numbers, from raw rows."""
    tz = zoneinfo.ZoneInfo(zone)
    offer_ids = [uuid.UUID(o) for o in offers]
    clicks = await pool.fetch(
        "select click_id, clicked_at, offer_id, rtrim(country) as country, device_type, host(ip) as ip, user_agent"
        " from clicks where offer_id = any($1) order by clicked_at, click_id", offer_ids)
    conversions = await pool.fetch(
        "select received_at, offer_id, rtrim(click_country) as country, device_type, status, revenue_minor,"
        " payout_minor, rtrim(currency) as currency, cardinality(fraud_flags) > 0 as flagged"
        " from conversions where offer_id = any($1)", offer_ids)
    out: dict = defaultdict(lambda: {"clicks": 0, "unique_clicks": 0, "fraud_flagged": 0,
                                     "conversions": Counter(), "money": Counter()})
    seen = set()

    def key(at, row):
        values = {"day": at.astimezone(tz).date().isoformat(), "offer_id": str(row["offer_id"]),
                  "country": row["country"], "device": row["device_type"]}
        return tuple(values[k] for k in keys)

    for c in clicks:
        k = key(c["clicked_at"], c)
        out[k]["clicks"] += 1
        first = (c["offer_id"], c["clicked_at"].astimezone(UTC).date(), _visitor(c["ip"], c["user_agent"]))
        if first not in seen:
            seen.add(first)
            out[k]["unique_clicks"] += 1
    for c in conversions:
        k = key(c["received_at"], c)
        out[k]["conversions"][c["status"]] += 1
        out[k]["fraud_flagged"] += int(c["flagged"])
        if c["status"] == "approved":
            out[k]["money"][(c["currency"], "revenue")] += c["revenue_minor"]
            out[k]["money"][(c["currency"], "payout")] += c["payout_minor"]
    return {k: _plain(v) for k, v in out.items()}


def _plain(v: dict) -> dict:
    money = {}
    for (currency, what), amount in v["money"].items():
        money.setdefault(currency, {"revenue": 0, "payout": 0})[what] = amount
    return {"clicks": v["clicks"], "unique_clicks": v["unique_clicks"], "fraud_flagged": v["fraud_flagged"],
            "conversions": {s: v["conversions"][s] for s in ("pending", "approved", "rejected", "reversed")},
            "money": money}


def _answered(row: dict, keys: tuple[str, ...]) -> tuple[tuple, dict]:
    money = {m["currency"]: {"revenue": m["revenue_minor"], "payout": m["payout_minor"]}
             for m in row["money"] if m["revenue_minor"] or m["payout_minor"]}
    conversions = {s: row["conversions"][s] for s in ("pending", "approved", "rejected", "reversed")}
    assert row["conversions"]["total"] == sum(conversions.values())
    return (tuple(row["key"][k] for k in keys),
            {"clicks": row["clicks"], "unique_clicks": row["unique_clicks"], "fraud_flagged": row["fraud_flagged"],
             "conversions": conversions, "money": money})


async def _api(client, tenant, offers, zone: str, keys: tuple[str, ...]) -> dict:
    group_by = ",".join(k.removesuffix("_id") for k in keys)
    response = await client.get("/v1/stats", headers=tenant.headers, params={
        **QUERY, "tz": zone, "group_by": group_by, "offer_id": ",".join(offers), "limit": 1000})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    rows = dict(_answered(r, keys) for r in body["data"])
    return {k: v for k, v in rows.items() if v["clicks"] or any(v["conversions"].values())}


clicks_strategy = st.lists(st.tuples(
    st.integers(0, SPAN_MIN - 1), st.integers(0, len(VISITORS) - 1), st.integers(0, 1),
    st.sampled_from(["US", "DE", None]), st.sampled_from(["desktop", "mobile", None]),
    st.sampled_from(["a", "b", None]),
), min_size=1, max_size=30)
conversions_strategy = st.lists(st.tuples(st.integers(0, 1000), st.sampled_from(PATHS), st.integers(0, 600)),
                                max_size=12)


@hypothesis_settings(max_examples=25, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(clicks_spec=clicks_strategy, conversions_spec=conversions_strategy, zone=st.sampled_from(ZONES),
       keys=st.sampled_from([("day",), ("day", "offer_id"), ("day", "country", "device")]))
async def test_stats_equal_sums_over_raw_rows_in_any_zone(
        client, pool, api_settings, tenant, clicks_spec, conversions_spec, zone, keys):
    offers = await _offers(pool, tenant, ("USD", "EUR"))
    records, postbacks = await _write(pool, api_settings, tenant, offers, clicks_spec, conversions_spec)
    expected = await _expected(pool, offers, zone, keys)
    assert await _api(client, tenant, offers, zone, keys) == expected

    # Replays (the ingest batch and every postback again) leave every number as it was.
    async with pool.acquire() as conn, conn.transaction():
        await insert_clicks(conn, records)
    async with pool.acquire() as conn, conn.transaction():
        await apply_postbacks(conn, postbacks, settings=api_settings, now=START + dt.timedelta(days=5))
    assert await _api(client, tenant, offers, zone, keys) == expected


def _at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.mark.parametrize("zone, edges", [
    # New York, 2026-11-01: 00:00 EDT is 04:00 UTC, the day lasts 25 hours, 11-02 starts 05:00 UTC.
    ("America/New_York", {"2026-10-31": ["2026-11-01T03:59:00+00:00"],
                          "2026-11-01": ["2026-11-01T04:00:00+00:00", "2026-11-02T04:59:00+00:00"],
                          "2026-11-02": ["2026-11-02T05:00:00+00:00"]}),
    # Kolkata (+05:30): 2026-11-01 starts 2026-10-31 18:30 UTC.
    ("Asia/Kolkata", {"2026-10-31": ["2026-10-31T18:29:00+00:00"],
                      "2026-11-01": ["2026-10-31T18:30:00+00:00", "2026-11-01T18:29:00+00:00"],
                      "2026-11-02": ["2026-11-01T18:30:00+00:00"]}),
    # Kathmandu (+05:45): 2026-11-01 starts 2026-10-31 18:15 UTC.
    ("Asia/Kathmandu", {"2026-10-31": ["2026-10-31T18:14:00+00:00"],
                        "2026-11-01": ["2026-10-31T18:15:00+00:00", "2026-11-01T18:14:00+00:00"],
                        "2026-11-02": ["2026-11-01T18:15:00+00:00"]}),
])
async def test_local_days_start_on_the_right_minute(client, pool, api_settings, tenant, zone, edges):
    offers = await _offers(pool, tenant, ("USD",))
    spec = [(int((_at(t) - START).total_seconds() // 60), i % len(VISITORS), 0, "US", "desktop", None)
            for i, t in enumerate(t for times in edges.values() for t in times)]
    await _write(pool, api_settings, tenant, offers, spec, [])
    got = await _api(client, tenant, offers, zone, ("day",))
    assert {k[0]: v["clicks"] for k, v in got.items()} == {day: len(times) for day, times in edges.items()}
    hours = await client.get("/v1/stats", headers=tenant.headers, params={
        **QUERY, "tz": zone, "group_by": "hour", "offer_id": offers[0], "measures": "clicks"})
    assert hours.status_code == 200, hours.text
    starts = {r["key"]["hour"]: r["clicks"] for r in hours.json()["data"] if r["clicks"]}
    expected = Counter(_at(t).astimezone(zoneinfo.ZoneInfo(zone)).replace(minute=0).isoformat()
                       for times in edges.values() for t in times)
    assert starts == dict(expected)
