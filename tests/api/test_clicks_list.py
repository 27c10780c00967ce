"""GET /v1/clicks: newest first, each filter, cursor pages, role scoping, bad input."""

from __future__ import annotations

import datetime as dt

import pytest
import pytest_asyncio

from tests.api.conftest import assert_error
from tests.api.traffic import NOW, in_last_day, make_traffic, newest_first


@pytest_asyncio.fixture
async def traffic(client, pool, tenant):
    return await make_traffic(client, pool, tenant)


async def _ids(client, headers, **params) -> list[str]:
    response = await client.get("/v1/clicks", params={"limit": 200, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return [c["click_id"] for c in response.json()["data"]]


async def test_the_last_day_newest_first_with_every_field(client, tenant, traffic):
    expected = newest_first(in_last_day(traffic.clicks))
    response = await client.get("/v1/clicks", params={"limit": 200}, headers=tenant.headers)
    data = response.json()["data"]
    assert [c["click_id"] for c in data] == [r.click_id for r in expected]
    first, record = data[0], expected[0]
    assert first["offer_id"] == record.offer_id and first["link_id"] == record.link_id
    assert first["ip"] == "203.0.113.7" and first["user_agent"] == "Mozilla/5.0" and first["country"] == record.country
    assert dt.datetime.fromisoformat(first["clicked_at"]).timestamp() * 1000 == record.ts_ms


async def test_pages_follow_the_cursor_to_the_end(client, tenant, traffic):
    seen, cursor = [], None
    while True:
        params = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/clicks", params=params, headers=tenant.headers)).json()
        seen += [c["click_id"] for c in page["data"]]
        if (cursor := page["next_cursor"]) is None:
            break
    assert seen == [r.click_id for r in newest_first(in_last_day(traffic.clicks))]


async def test_each_filter(client, tenant, traffic):
    recent = in_last_day(traffic.clicks)
    window = {"from": (NOW - dt.timedelta(days=4)).isoformat(), "to": (NOW + dt.timedelta(minutes=1)).isoformat()}
    cases = {
        "offer_id": (traffic.other_offer_id, lambda r: r.offer_id == traffic.other_offer_id),
        "affiliate_id": (tenant.affiliate_id, lambda r: r.affiliate_id == tenant.affiliate_id),
        "link_id": (traffic.other_link_id, lambda r: r.link_id == traffic.other_link_id),
        "country": ("FR", lambda r: r.country == "FR"),
        "device": ("mobile", lambda r: r.device_type == "mobile"),
        "sub1": ("s2", lambda r: r.sub1 == "s2"),
    }
    for field, (value, keep) in cases.items():
        expected = [r.click_id for r in newest_first([r for r in recent if keep(r)])]
        assert expected and await _ids(client, tenant.headers, **{field: value}) == expected, field
    geo = [r.click_id for r in traffic.clicks if r.outcome == "fallback_geo"]
    assert await _ids(client, tenant.headers, outcome="fallback_geo", **window) == geo
    assert await _ids(client, tenant.headers, outcome="fallback_geo") == []  # three days ago: outside the default


async def test_roles_see_their_own_clicks_without_the_visitor(client, tenant, traffic):
    recent = in_last_day(traffic.clicks)
    mine = [r.click_id for r in newest_first([r for r in recent if r.offer_id == traffic.offer_id])]
    for headers in (traffic.advertiser_headers, traffic.affiliate_headers):
        response = await client.get("/v1/clicks", params={"limit": 200}, headers=headers)
        data = response.json()["data"]
        assert [c["click_id"] for c in data] == mine
        assert all("ip" not in c and "user_agent" not in c for c in data)
        # filtering by someone else's offer or affiliate finds nothing, never their clicks
        assert await _ids(client, headers, offer_id=traffic.other_offer_id) == []
        assert await _ids(client, headers, affiliate_id=traffic.other_affiliate_id) == []


async def test_another_organizations_ids_find_nothing(client, other, traffic):
    assert await _ids(client, other.headers) == []
    assert await _ids(client, other.headers, offer_id=traffic.offer_id) == []


@pytest.mark.parametrize("params, status, code", [
    ({"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, 422, "invalid_range"),
    ({"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, 422, "range_too_long"),
    ({"from": "2026-01-01T00:00:00"}, 422, "invalid_request"),  # no offset
    ({"from": "yesterday"}, 422, "invalid_request"),
    ({"offer_id": "not-a-uuid"}, 422, "invalid_request"),
    ({"device": "toaster"}, 422, "invalid_request"),
    ({"country": "Germany"}, 422, "invalid_request"),
    ({"outcome": "maybe"}, 422, "invalid_request"),
    ({"cursor": "bm90IGEgY3Vyc29y"}, 422, "invalid_cursor"),
    ({"limit": "0"}, 422, "invalid_request"),
    ({"colour": "red"}, 422, "invalid_request"),
])
async def test_bad_input(client, tenant, params, status, code):
    assert_error(await client.get("/v1/clicks", params=params, headers=tenant.headers), status, code)
