"""GET /v1/stats over rollup rows of known shape: bad input, role scoping, money per
currency, sorting and pagination, another organization's ids."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
import pytest
import pytest_asyncio

from core.store.advertisers import create_advertiser
from core.store.affiliates import create_affiliate
from core.store.api_keys import create_api_key
from tests.api.conftest import assert_error, create_offer
from tests.api.rollup_rows import Fact, add_facts

UTC = dt.timezone.utc
DAY1 = dt.datetime(2026, 11, 1, tzinfo=UTC)
RANGE = {"from": "2026-11-01", "to": "2026-11-03"}


class Shop(msgspec.Struct, kw_only=True):
    offer_a: str  # advertiser A's (the tenant's)
    offer_b: str  # advertiser B's
    advertiser_b: str
    affiliate_y: str  # X is the tenant's affiliate
    advertiser_headers: dict[str, str]  # A's key
    affiliate_headers: dict[str, str]  # X's key


def _bearer(key) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.key}"}


@pytest_asyncio.fixture
async def shop(client, pool, tenant, other) -> Shop:
    async with pool.acquire() as conn:
        adv_b = str((await create_advertiser(conn, tenant.org_id, "B")).id)
        aff_y = str((await create_affiliate(conn, tenant.org_id, "Y")).id)
        adv_key = await create_api_key(conn, tenant.org_id, "adv", "advertiser", advertiser_id=tenant.advertiser_id)
        aff_key = await create_api_key(conn, tenant.org_id, "aff", "affiliate", affiliate_id=tenant.affiliate_id)
    offer_a = (await create_offer(client, tenant))["id"]
    offer_b = (await create_offer(client, tenant, advertiser_id=adv_b, name="B offer"))["id"]
    a, x = tenant.advertiser_id, tenant.affiliate_id
    hour = dt.timedelta(hours=1)
    await add_facts(pool, tenant.org_id, [
        Fact(at=DAY1 + 10 * hour, advertiser_id=a, offer_id=offer_a, affiliate_id=x, country="US", device="desktop",
             sub1="a", clicks=10, unique_clicks=8),
        Fact(at=DAY1 + 10 * hour, advertiser_id=a, offer_id=offer_a, affiliate_id=x, country="US", device="desktop",
             sub1="a", currency="USD", conversions_approved=2, conversions_pending=1, fraud_flagged=1,
             revenue_minor=2000, payout_minor=1200),
        Fact(at=DAY1 + dt.timedelta(hours=11, minutes=15), advertiser_id=a, offer_id=offer_a, affiliate_id=aff_y,
             country="DE", device="mobile", sub1="b", clicks=5, unique_clicks=5),
        Fact(at=DAY1 + dt.timedelta(hours=11, minutes=15), advertiser_id=a, offer_id=offer_a, affiliate_id=aff_y,
             country="DE", device="mobile", sub1="b", currency="EUR", conversions_approved=1, revenue_minor=900,
             payout_minor=500),
        Fact(at=DAY1 + 33 * hour, advertiser_id=adv_b, offer_id=offer_b, affiliate_id=x, country="US", clicks=7,
             unique_clicks=7),
        Fact(at=DAY1 + 33 * hour, advertiser_id=adv_b, offer_id=offer_b, affiliate_id=x, country="US",
             currency="USD", conversions_approved=1, conversions_rejected=1, revenue_minor=1500, payout_minor=1000),
        Fact(at=DAY1 + 50 * hour, advertiser_id=adv_b, offer_id=offer_b, affiliate_id=aff_y, clicks=3,
             unique_clicks=2),
        Fact(at=DAY1 + 12 * hour, advertiser_id=a, currency="USD", conversions_rejected=1),  # no click matched
        Fact(at=DAY1 + 80 * hour, advertiser_id=a, offer_id=offer_a, affiliate_id=x, clicks=100),  # after the range
    ])
    await add_facts(pool, other.org_id, [
        Fact(at=DAY1 + 10 * hour, advertiser_id=other.advertiser_id, offer_id=offer_a, affiliate_id=other.affiliate_id,
             clicks=1000),
    ])
    return Shop(offer_a=offer_a, offer_b=offer_b, advertiser_b=adv_b, affiliate_y=aff_y,
                advertiser_headers=_bearer(adv_key), affiliate_headers=_bearer(aff_key))


async def stats(client, headers, **query) -> dict:
    response = await client.get("/v1/stats", params=query, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_totals_count_everything_once_and_money_stays_per_currency(client, tenant, shop):
    body = await stats(client, tenant.headers, **RANGE)
    assert body["query"] == {"from": "2026-11-01T00:00:00+00:00", "to": "2026-11-04T00:00:00+00:00", "tz": "UTC",
                             "group_by": [], "measures": ["clicks", "unique_clicks", "conversions", "conversion_rate",
                                                          "epc", "revenue", "payout", "profit"]}
    assert body["next_cursor"] is None
    (row,) = body["data"]
    assert row["key"] == {}
    totals = body["totals"]
    assert {k: v for k, v in row.items() if k != "key"} == totals
    assert totals["clicks"] == 25 and totals["unique_clicks"] == 22
    assert totals["conversions"] == {"pending": 1, "approved": 4, "rejected": 2, "reversed": 0, "total": 7}
    assert totals["fraud_flagged"] == 1 and totals["conversion_rate"] == "0.160000"
    assert totals["money"] == [
        {"currency": "EUR", "revenue_minor": 900, "payout_minor": 500, "profit_minor": 400, "epc": "0.2000"},
        {"currency": "USD", "revenue_minor": 3500, "payout_minor": 2200, "profit_minor": 1300, "epc": "0.8800"},
    ]


async def test_group_by_day_and_offer(client, tenant, shop):
    body = await stats(client, tenant.headers, group_by="day,offer", measures="clicks,conversions,revenue", **RANGE)
    got = {(r["key"]["day"], r["key"]["offer_id"]): (r["clicks"], r["conversions"]["total"],
                                                     [(m["currency"], m["revenue_minor"]) for m in r["money"]])
           for r in body["data"]}
    assert got == {
        ("2026-11-01", None): (0, 1, [("USD", 0)]),
        ("2026-11-01", shop.offer_a): (15, 4, [("EUR", 900), ("USD", 2000)]),
        ("2026-11-02", shop.offer_b): (7, 2, [("USD", 1500)]),
        ("2026-11-03", shop.offer_b): (3, 0, []),
    }
    assert [list(r["key"]) for r in body["data"]] == [["day", "offer_id"]] * 4
    assert all(set(r) == {"key", "clicks", "conversions", "fraud_flagged", "money"} for r in body["data"])
    assert all(set(m) == {"currency", "revenue_minor"} for r in body["data"] for m in r["money"])


async def test_a_currency_filter_chooses_money_not_counts(client, tenant, shop):
    body = await stats(client, tenant.headers, currency="EUR", **RANGE)
    assert body["totals"]["clicks"] == 25 and body["totals"]["conversions"]["total"] == 7
    assert [m["currency"] for m in body["totals"]["money"]] == ["EUR"]


async def test_sorting_by_money_in_one_currency(client, tenant, shop):
    body = await stats(client, tenant.headers, group_by="affiliate", sort="-revenue", currency="USD", **RANGE)
    assert [r["key"]["affiliate_id"] for r in body["data"]] == [tenant.affiliate_id, None, shop.affiliate_y]
    assert [r["money"] for r in body["data"]][2] == []


async def test_an_affiliate_sees_only_its_traffic_and_never_revenue(client, tenant, shop):
    response = await client.get("/v1/stats", params={"group_by": "offer,day", **RANGE},
                                headers=shop.affiliate_headers)
    assert response.status_code == 200, response.text
    assert "revenue" not in response.text and "profit" not in response.text
    body = response.json()
    assert {(r["key"]["offer_id"], r["clicks"]) for r in body["data"]} == {(shop.offer_a, 10), (shop.offer_b, 7)}
    assert body["totals"]["clicks"] == 17 and body["totals"]["conversions"]["total"] == 5
    assert body["totals"]["money"] == [{"currency": "USD", "payout_minor": 2200, "epc": "1.2941"}]
    # another affiliate's id, or its own among others, never widens the pin
    for wanted in (shop.affiliate_y, f"{shop.affiliate_y},{tenant.affiliate_id}"):
        body = await stats(client, shop.affiliate_headers, affiliate_id=wanted, **RANGE)
        expected = 17 if tenant.affiliate_id in wanted else 0
        assert body["totals"]["clicks"] == expected


async def test_an_advertiser_sees_only_its_offers_and_never_payout(client, tenant, shop):
    response = await client.get("/v1/stats", params={"group_by": "offer,affiliate", **RANGE},
                                headers=shop.advertiser_headers)
    assert response.status_code == 200, response.text
    for word in ("payout", "profit", "epc"):
        assert word not in response.text
    body = response.json()
    assert {(r["key"]["offer_id"], r["key"]["affiliate_id"], r["clicks"]) for r in body["data"]} == {
        (shop.offer_a, tenant.affiliate_id, 10), (shop.offer_a, shop.affiliate_y, 5), (None, None, 0)}
    assert body["totals"]["money"] == [{"currency": "EUR", "revenue_minor": 900},
                                       {"currency": "USD", "revenue_minor": 2000}]
    body = await stats(client, shop.advertiser_headers, offer_id=shop.offer_b, **RANGE)
    assert body["totals"]["clicks"] == 0 and body["totals"]["conversions"]["total"] == 0


@pytest.mark.parametrize("field", ["offer_id", "advertiser_id", "affiliate_id"])
async def test_another_organizations_ids_are_refused_like_missing_ones(client, other, shop, field):
    theirs = {"offer_id": shop.offer_b, "advertiser_id": shop.advertiser_b, "affiliate_id": shop.affiliate_y}[field]
    missing = str(uuid.uuid4())
    foreign = await client.get("/v1/stats", params={field: theirs, **RANGE}, headers=other.headers)
    unknown = await client.get("/v1/stats", params={field: missing, **RANGE}, headers=other.headers)
    assert_error(foreign, 422, "unknown_id")
    assert_error(unknown, 422, "unknown_id")
    assert foreign.json()["message"] == unknown.json()["message"] == f"{field}: no such {field[:-3]} in this organization"


async def test_another_organizations_rows_never_count(client, other, shop):
    body = await stats(client, other.headers, **RANGE)
    assert body["totals"]["clicks"] == 1000  # its own row, on an offer id it does not even own


@pytest.mark.parametrize("sort", [None, "-clicks", "clicks", "-conversion_rate", "-revenue", "country", "-sub1"])
async def test_pages_walk_every_row_exactly_once(client, pool, tenant, shop, sort):
    await add_facts(pool, tenant.org_id, [
        Fact(at=DAY1 + dt.timedelta(minutes=15 * i), advertiser_id=tenant.advertiser_id, offer_id=shop.offer_a,
             affiliate_id=tenant.affiliate_id, country=("US", "DE", None)[i % 3], sub1=f"s{i % 7}", clicks=i % 4,
             currency="USD" if i % 5 else None, conversions_approved=i % 2, revenue_minor=100 * (i % 3))
        for i in range(60)
    ])
    query = {"group_by": "hour,country,sub1", "limit": "7", **RANGE, **({"sort": sort} if sort else {})}
    if sort == "-revenue":
        query["currency"] = "USD"
    whole = await stats(client, tenant.headers, **{**query, "limit": "1000"})
    assert whole["next_cursor"] is None and len(whole["data"]) > 30
    walked, cursor = [], None
    while True:
        page = await stats(client, tenant.headers, **query, **({"cursor": cursor} if cursor else {}))
        assert len(page["data"]) <= 7 and page["totals"] == whole["totals"]
        walked += page["data"]
        if (cursor := page["next_cursor"]) is None:
            break
    assert walked == whole["data"]
    keys = [tuple(sorted(r["key"].items(), key=lambda kv: kv[0])) for r in walked]
    assert len(set(map(str, keys))) == len(keys)


BAD = [
    ({"tz": "Mars/Olympus"}, 422, "invalid_tz"),
    ({"from": "2026-11-03", "to": "2026-11-01"}, 422, "invalid_range"),
    ({"from": "2025-01-01", "to": "2026-11-01"}, 422, "range_too_large"),
    ({"from": "2026-10-01", "to": "2026-11-05", "group_by": "hour"}, 422, "range_too_large"),
    ({"group_by": "day,planet"}, 422, "invalid_group_by"),
    ({"measures": "clicks,likes"}, 422, "invalid_measure"),
    ({"group_by": "day,month"}, 422, "invalid_group_by"),
    ({"from": "2026-02-30"}, 422, "invalid_date"),
    ({"from": "2026-11-01T00:05:00+00:00"}, 422, "misaligned_time"),
    ({"cursor": "not a cursor"}, 422, "invalid_cursor"),
    ({"group_by": "offer", "sort": "-revenue"}, 422, "invalid_sort"),
    ({"offer_id": "42"}, 422, "invalid_filter"),
    ({"limit": "0"}, 422, "invalid_request"),
    ({"limit": "many"}, 422, "invalid_request"),
    ({"colour": "red"}, 422, "invalid_request"),
    ({"tz": "x" * 65}, 422, "invalid_request"),
]


@pytest.mark.parametrize("query, status, code", BAD)
async def test_bad_input_is_a_4xx_with_the_standard_body(client, tenant, query, status, code):
    response = await client.get("/v1/stats", params=query, headers=tenant.headers)
    assert_error(response, status, code)


ROLE_BAD = [
    ("affiliate_headers", {"measures": "clicks,revenue"}, "forbidden_measure"),
    ("affiliate_headers", {"measures": "profit"}, "forbidden_measure"),
    ("affiliate_headers", {"group_by": "advertiser"}, "forbidden_dimension"),
    ("affiliate_headers", {"advertiser_id": str(uuid.uuid4())}, "forbidden_dimension"),
    ("advertiser_headers", {"measures": "payout"}, "forbidden_measure"),
    ("advertiser_headers", {"measures": "clicks,epc"}, "forbidden_measure"),
    ("advertiser_headers", {"sort": "-profit", "currency": "USD"}, "forbidden_measure"),
]


@pytest.mark.parametrize("who, query, code", ROLE_BAD)
async def test_scoped_keys_asking_for_hidden_things_get_403(client, shop, who, query, code):
    response = await client.get("/v1/stats", params=query, headers=getattr(shop, who))
    assert_error(response, 403, code)


async def test_a_cursor_from_another_query_is_refused(client, pool, tenant, shop):
    await add_facts(pool, tenant.org_id, [
        Fact(at=DAY1 + dt.timedelta(hours=i), advertiser_id=tenant.advertiser_id, offer_id=shop.offer_a, clicks=1)
        for i in range(5)
    ])
    page = await stats(client, tenant.headers, group_by="hour", limit="2", **RANGE)
    assert page["next_cursor"]
    for changed in ({"to": "2026-11-02"}, {"tz": "Asia/Kolkata"}, {"group_by": "hour,offer"}, {"sort": "-hour"},
                    {"offer_id": shop.offer_a}):
        query = {"group_by": "hour", "cursor": page["next_cursor"], **RANGE, **changed}
        response = await client.get("/v1/stats", params=query, headers=tenant.headers)
        assert_error(response, 422, "invalid_cursor")


async def test_the_openapi_document_describes_stats(client):
    document = (await client.get("/openapi.json")).json()
    operation = document["paths"]["/v1/stats"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"from", "to", "tz", "group_by", "measures", "sort",
                                                             "cursor", "limit", "offer_id", "currency"}
    assert operation["x-afftok-action"] == "stats:read"
    assert "StatsPage" in document["components"]["schemas"]
