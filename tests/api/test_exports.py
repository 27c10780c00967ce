"""Streamed exports (GET /v1/exports/{kind}.{format}): the listing's rows in CSV (header,
quoting, formula-safe cells) and JSON Lines, role scoping, bad input; and the job
endpoints' refusals (their runs are in tests/workers/test_export_jobs.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import uuid

import pytest
import pytest_asyncio

from core.export_format import FORMULA_STARTS
from tests.api.conftest import assert_error
from tests.api.test_conversions import shop  # noqa: F401  (a fixture)
from tests.api.traffic import EVIL_SUB1, NOW, in_last_day, make_traffic, newest_first


@pytest_asyncio.fixture
async def traffic(client, pool, tenant):
    return await make_traffic(client, pool, tenant)


def parse_csv(body: bytes) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(body.decode(), newline="")))


def parse_jsonl(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.decode().splitlines()]


async def _export(client, headers, name: str, **params):
    response = await client.get(f"/v1/exports/{name}", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response


async def _listing(client, headers, path: str, **params) -> list[dict]:
    response = await client.get(path, params={"limit": 200, **params}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def test_clicks_csv_is_the_listing_parsed_back(client, tenant, traffic):
    response = await _export(client, tenant.headers, "clicks.csv")
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith('attachment; filename="clicks-')
    rows = parse_csv(response.content)
    listed = await _listing(client, tenant.headers, "/v1/clicks")
    assert [r["click_id"] for r in rows] == [r.click_id for r in newest_first(in_last_day(traffic.clicks))]
    for row, item in zip(rows, listed):
        defused = {k: ("'" + v if isinstance(v, str) and v.startswith(FORMULA_STARTS) else v) for k, v in item.items()}
        assert row == {k: "" if v is None else v for k, v in defused.items()}
    assert response.content.startswith(b"click_id,clicked_at,offer_id,")


async def test_formula_cells_are_defused_and_quoting_round_trips(client, tenant, traffic):
    rows = parse_csv((await _export(client, tenant.headers, "clicks.csv", sub1=EVIL_SUB1[0])).content)
    assert [r["sub1"] for r in rows] == ["'" + EVIL_SUB1[0]]
    every = {r["sub1"] for r in parse_csv((await _export(client, tenant.headers, "clicks.csv")).content)}
    for value in EVIL_SUB1:
        expected = "'" + value if value.startswith(FORMULA_STARTS) else value
        assert expected in every, value
    assert not any(v.startswith(("=", "+", "-", "@", "\t", "\r")) for v in every)
    # JSON Lines carries the value as sent
    lines = parse_jsonl((await _export(client, tenant.headers, "clicks.jsonl")).content)
    assert set(EVIL_SUB1) <= {line["sub1"] for line in lines}


async def test_clicks_jsonl_equals_the_listing(client, tenant, traffic):
    window = {"from": (NOW - dt.timedelta(days=5)).isoformat(), "to": (NOW + dt.timedelta(hours=1)).isoformat()}
    response = await _export(client, tenant.headers, "clicks.jsonl", **window)
    assert response.headers["content-type"] == "application/jsonl; charset=utf-8"
    assert parse_jsonl(response.content) == await _listing(client, tenant.headers, "/v1/clicks", **window)
    assert len(parse_jsonl(response.content)) == len(traffic.clicks)


async def test_filters_apply_as_in_the_listing(client, tenant, traffic):
    for params in ({"offer_id": traffic.other_offer_id}, {"country": "FR", "device": "mobile"}, {"sub1": "s3"}):
        exported = parse_jsonl((await _export(client, tenant.headers, "clicks.jsonl", **params)).content)
        assert exported == await _listing(client, tenant.headers, "/v1/clicks", **params)
        assert exported


async def test_scoped_roles_export_their_own_rows_without_hidden_columns(client, tenant, traffic):
    mine = [r.click_id for r in newest_first(in_last_day(traffic.clicks)) if r.offer_id == traffic.offer_id]
    for headers in (traffic.advertiser_headers, traffic.affiliate_headers):
        rows = parse_csv((await _export(client, headers, "clicks.csv")).content)
        assert [r["click_id"] for r in rows] == mine
        assert "ip" not in rows[0] and "user_agent" not in rows[0]
        assert parse_csv((await _export(client, headers, "clicks.csv", offer_id=traffic.other_offer_id)).content) == []


async def test_conversions_export_by_role(client, pool, shop):  # noqa: F811
    tenant = shop.tenant
    everything = parse_csv((await _export(client, tenant.headers, "conversions.csv")).content)
    listed = await _listing(client, tenant.headers, "/v1/conversions")
    assert [r["id"] for r in everything] == [c["id"] for c in listed]
    approved = next(r for r in everything if r["id"] == shop.ids["approved"])
    assert approved["revenue_minor"] == "250" and approved["payout_minor"] == "150"
    assert json.loads(approved["metadata"]) == {"plan": "gold"}
    from core.store.api_keys import create_api_key

    async with pool.acquire() as conn:
        aff = await create_api_key(conn, tenant.org_id, "aff", "affiliate", affiliate_id=tenant.affiliate_id)
        adv = await create_api_key(conn, tenant.org_id, "adv", "advertiser", advertiser_id=tenant.advertiser_id)
    aff_rows = parse_jsonl((await _export(client, {"Authorization": f"Bearer {aff.key}"}, "conversions.jsonl")).content)
    assert {r["id"] for r in aff_rows} == {shop.ids["pending"], shop.ids["approved"], shop.ids["other_advertiser"]}
    assert not {"revenue_minor", "advertiser_id", "ip", "user_agent", "metadata", "external_id"} & set(aff_rows[0])
    adv_rows = parse_jsonl((await _export(client, {"Authorization": f"Bearer {adv.key}"}, "conversions.jsonl")).content)
    assert shop.ids["other_advertiser"] not in {r["id"] for r in adv_rows}
    assert "payout_minor" not in adv_rows[0] and "revenue_minor" in adv_rows[0]
    refused = await client.get("/v1/exports/conversions.csv", params={"advertiser_id": tenant.advertiser_id},
                               headers={"Authorization": f"Bearer {aff.key}"})
    assert_error(refused, 403, "forbidden")


async def test_another_organization_exports_nothing_of_ours(client, other, traffic):
    assert parse_csv((await _export(client, other.headers, "clicks.csv", offer_id=traffic.offer_id)).content) == []
    assert parse_jsonl((await _export(client, other.headers, "conversions.jsonl")).content) == []


@pytest.mark.parametrize("name, params, status, code", [
    ("clicks.xml", {}, 404, "unknown_export"),
    ("orders.csv", {}, 404, "unknown_export"),
    ("clicks.csv", {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, 422, "invalid_range"),
    ("clicks.csv", {"from": "2026-01-01T00:00:00Z", "to": "2026-02-15T00:00:00Z"}, 422, "range_too_long"),
    ("clicks.jsonl", {"offer_id": "x"}, 422, "invalid_filter"),
    ("clicks.csv", {"limit": "5"}, 422, "invalid_filter"),
    ("conversions.csv", {"status": "won"}, 422, "invalid_filter"),
    ("conversions.csv", {"created_from": "2026-01-02T00:00:00Z", "created_to": "2026-01-01T00:00:00Z"}, 422,
     "invalid_range"),
])
async def test_bad_stream_requests(client, tenant, name, params, status, code):
    assert_error(await client.get(f"/v1/exports/{name}", params=params, headers=tenant.headers), status, code)


@pytest.mark.parametrize("body, status, code", [
    ({"kind": "orders", "format": "csv"}, 422, "invalid_request"),
    ({"kind": "clicks", "format": "xlsx"}, 422, "invalid_request"),
    ({"kind": "clicks", "format": "csv", "filters": {"from": "2026-01-02T00:00:00Z", "to": "2026-01-01T00:00:00Z"}},
     422, "invalid_range"),
    ({"kind": "clicks", "format": "csv", "filters": {"from": "2025-01-01T00:00:00Z"}}, 422, "range_too_long"),
    ({"kind": "conversions", "format": "csv", "filters": {"colour": "red"}}, 422, "invalid_filter"),
    ({"kind": "clicks", "format": "csv", "extra": 1}, 422, "invalid_request"),
])
async def test_bad_job_requests_store_nothing(client, pool, tenant, body, status, code):
    assert_error(await client.post("/v1/exports", json=body, headers=tenant.headers), status, code)
    assert await pool.fetchval("select count(*) from export_jobs") == 0


async def test_job_ids_of_another_organization_or_none_read_as_missing(client, tenant, other):
    created = await client.post("/v1/exports", json={"kind": "clicks", "format": "csv"}, headers=tenant.headers)
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["status"] == "queued" and job["download_url"] is None
    assert_error(await client.get(f"/v1/exports/{job['id']}/download", headers=tenant.headers), 409, "not_ready")
    for path in (f"/v1/exports/{job['id']}", f"/v1/exports/{job['id']}/download"):
        assert_error(await client.get(path, headers=other.headers), 404, "not_found")
    assert_error(await client.get(f"/v1/exports/{uuid.uuid4()}", headers=tenant.headers), 404, "not_found")
    assert_error(await client.get("/v1/exports/not-an-id", headers=tenant.headers), 404, "not_found")


async def test_partner_text_in_conversions_is_formula_safe_in_csv_only(client, pool, tenant):
    from tests.api.test_conversions import add_conversion

    await add_conversion(pool, tenant.org_id, tenant.advertiser_id, external_id="=1+2", status="rejected",
                         reason="@SUM(A1)")
    (row,) = parse_csv((await _export(client, tenant.headers, "conversions.csv")).content)
    assert row["external_id"] == "'=1+2" and row["reason"] == "'@SUM(A1)"
    assert row["revenue_minor"] == "250" and row["fraud_flags"] == ""
    (line,) = parse_jsonl((await _export(client, tenant.headers, "conversions.jsonl")).content)
    assert line["external_id"] == "=1+2" and line["reason"] == "@SUM(A1)" and line["fraud_flags"] == []
