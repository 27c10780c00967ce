"""Data subject rights through the api: export and erasure round trip, isolation, audit."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

import msgspec
import pytest
import pytest_asyncio

from core.ids import new_click_id
from core.models import ClickRecord
from core.privacy import ERASED_CLICK_FIELDS
from core.store.clicks import insert_clicks
from tests.api.conftest import Tenant, assert_error, create_link, create_offer, make_tenant

S1_IP, S2_IP = "198.51.100.10", "198.51.100.20"
NOW_MS = int(dt.datetime.now(dt.timezone.utc).timestamp() * 1000)
DAY_MS = 86_400_000


class World(msgspec.Struct, kw_only=True):
    a: Tenant
    b: Tenant
    s1: list[str]  # subject 1's click ids in A (one of them stored IPv4-mapped)
    s2: list[str]  # subject 2's click ids in A
    b_same_ip: list[str]  # clicks in B from subject 1's address


def _click(tenant: Tenant, offer: dict, link: dict, days_ago: int, n: int, ip: str, who: str) -> ClickRecord:
    ts_ms = NOW_MS - days_ago * DAY_MS - n
    return ClickRecord(
        click_id=new_click_id(ts_ms), ts_ms=ts_ms, org_id=tenant.org_id, offer_id=offer["id"],
        affiliate_id=tenant.affiliate_id, link_id=link["id"], outcome="redirect",
        sub1=f"{who}-a", sub2=f"{who}-b", sub3="c", sub4="d", sub5="e", source_id=f"{who}-src", ip=ip,
        user_agent=f"{who} browser", referer=f"https://{who}.example/", country="DE", device_type="mobile",
    )


@pytest_asyncio.fixture
async def world(client, pool) -> World:
    a, b = await make_tenant(pool, "A"), await make_tenant(pool, "B")
    a_offers = [await create_offer(client, a, name=f"A{n}") for n in range(2)]
    a_links = [await create_link(client, a, o["id"]) for o in a_offers]
    b_offer = await create_offer(client, b)
    b_link = await create_link(client, b, b_offer["id"])
    s1 = [
        _click(a, a_offers[0], a_links[0], 0, 1, S1_IP, "s1"),
        _click(a, a_offers[0], a_links[0], 1, 2, S1_IP, "s1"),
        _click(a, a_offers[1], a_links[1], 1, 3, S1_IP, "s1"),
        _click(a, a_offers[1], a_links[1], 2, 4, f"::ffff:{S1_IP}", "s1"),  # a dual-stack edge's form
    ]
    s2 = [_click(a, a_offers[n % 2], a_links[n % 2], n, 10 + n, S2_IP, "s2") for n in range(3)]
    b_same = [_click(b, b_offer, b_link, n, 20 + n, S1_IP, "b") for n in range(2)]
    async with pool.acquire() as conn:
        await insert_clicks(conn, s1 + s2 + b_same)
    return World(a=a, b=b, s1=[c.click_id for c in s1], s2=[c.click_id for c in s2],
                 b_same_ip=[c.click_id for c in b_same])


async def rows_of(pool, click_ids: list[str]) -> dict[str, dict]:
    rows = await pool.fetch("select *, host(ip) as ip from clicks where click_id = any($1::text[])", click_ids)
    return {r["click_id"]: dict(r) for r in rows}


async def counts(pool) -> list[tuple]:
    """Clicks per organization, offer, day and outcome: what reports count."""
    rows = await pool.fetch(
        "select org_id, offer_id, affiliate_id, (clicked_at at time zone 'utc')::date as day, outcome,"
        " country, device_type, count(*) as n from clicks group by 1, 2, 3, 4, 5, 6, 7 order by 1, 2, 3, 4, 5")
    return [tuple(r) for r in rows]


async def post(client, tenant: Tenant, what: str, body: dict):
    return await client.post(f"/v1/privacy/{what}", json=body, headers=tenant.headers)


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def test_export_then_erase_round_trip(client, pool, world):
    a, s1 = world.a, world.s1
    counts_before = await counts(pool)
    others_before = await rows_of(pool, world.s2 + world.b_same_ip)
    stored = await rows_of(pool, s1)

    by_click = (await post(client, a, "export", {"click_id": s1[0]})).json()
    assert by_click["subject"] == {"kind": "click_id", "value": s1[0]} and by_click["sources"] == ["clicks", "conversions"]
    assert by_click["generated_at"]
    [exported] = by_click["clicks"]
    expected = stored[s1[0]]
    assert {k: exported[k] for k in ("click_id", "ip", "user_agent", "referer", "sub1", "sub5", "source_id", "country")} \
        == {k: expected[k] for k in ("click_id", "ip", "user_agent", "referer", "sub1", "sub5", "source_id", "country")}
    assert set(exported) == set(expected)  # every column

    by_ip = (await post(client, a, "export", {"ip": S1_IP})).json()
    assert sorted(c["click_id"] for c in by_ip["clicks"]) == sorted(s1)  # the mapped form too; not B's, not S2's

    erased = await post(client, a, "erase", {"ip": S1_IP})
    assert erased.status_code == 200, erased.text
    assert erased.json()["clicks_scrubbed"] == len(s1) and erased.json()["sources"] == ["clicks", "conversions"]
    for click_id, row in (await rows_of(pool, s1)).items():
        assert all(row[f] is None for f in ERASED_CLICK_FIELDS), row
        kept = ("clicked_at", "org_id", "offer_id", "affiliate_id", "link_id", "outcome", "country", "device_type")
        assert {k: row[k] for k in kept} == {k: stored[click_id][k] for k in kept}

    assert await counts(pool) == counts_before  # reports are unchanged
    assert await rows_of(pool, world.s2 + world.b_same_ip) == others_before  # nobody else touched

    again = await post(client, a, "erase", {"ip": S1_IP})
    assert again.json()["clicks_scrubbed"] == 0
    again = await post(client, a, "erase", {"click_id": s1[0]})
    assert again.json()["clicks_scrubbed"] == 0

    [after] = (await post(client, a, "export", {"click_id": s1[0]})).json()["clicks"]
    assert all(after[f] is None for f in ERASED_CLICK_FIELDS) and after["click_id"] == s1[0]
    assert (await post(client, a, "export", {"ip": S1_IP})).json()["clicks"] == []


async def test_exports_and_erasures_are_audited_without_the_selector_in_clear(client, pool, world):
    a = world.a
    await post(client, a, "export", {"ip": S1_IP})
    await post(client, a, "erase", {"click_id": world.s1[1]})
    rows = await pool.fetch(
        "select action, target_type, target_id, after, to_jsonb(l)::text as text from audit_log l"
        " where org_id = $1 order by id", uuid.UUID(a.org_id))
    assert [(r["action"], r["target_type"], r["target_id"]) for r in rows[-2:]] == [
        ("privacy.export", "ip", digest(S1_IP)), ("privacy.erase", "click_id", digest(world.s1[1]))]
    both = ["clicks", "conversions"]
    assert rows[-2]["after"] == {"sources": both, "clicks": len(world.s1), "conversions": 0}
    assert rows[-1]["after"] == {"sources": both, "clicks_scrubbed": 1, "conversions_scrubbed": 0}
    assert not any(S1_IP in r["text"] or world.s1[1] in r["text"] for r in rows)


async def test_another_organizations_subject_is_not_found_or_erased(client, pool, world):
    b = world.b
    a_rows = await rows_of(pool, world.s1)
    for body in ({"click_id": world.s1[0]}, {"ip": S2_IP}):
        exported = (await post(client, b, "export", body)).json()
        assert exported["clicks"] == [], body
        assert (await post(client, b, "erase", body)).json()["clicks_scrubbed"] == 0
    assert await rows_of(pool, world.s1) == a_rows
    # B's own clicks from the same address are B's to export
    exported = (await post(client, b, "export", {"ip": S1_IP})).json()
    assert sorted(c["click_id"] for c in exported["clicks"]) == sorted(world.b_same_ip)


async def test_a_selector_no_table_holds_says_so(client, world):
    body = {"email_sha256": "A" * 64}
    for what in ("export", "erase"):
        response = await post(client, world.a, what, body)
        assert response.status_code == 200, response.text
        assert response.json()["sources"] == []
    exported = (await post(client, world.a, "export", body)).json()
    assert exported["clicks"] == [] and exported["conversions"] == []


async def add_conversion(pool, tenant: Tenant, external_id: str, *, click_id=None, ip=None, customer_id=None):
    """A conversion row as the worker stores it (the worker's own tests cover how)."""
    return await pool.fetchval(
        "insert into conversions (org_id, advertiser_id, click_id, external_id, status, sale_amount_minor,"
        " sale_currency, revenue_minor, payout_minor, currency, customer_id, metadata, ip, user_agent, country,"
        " source, postback_id, received_at)"
        " values ($1, $2, $3, $4, 'approved', 1999, 'EUR', 500, 300, 'EUR', $5, $6, $7::inet, 'Phone', 'DE',"
        " 'postback', $8, now()) returning id",
        uuid.UUID(tenant.org_id), uuid.UUID(tenant.advertiser_id), click_id, external_id, customer_id,
        {"email": "someone@example.com"} if customer_id else None, ip, new_click_id(NOW_MS))


async def test_conversions_are_found_by_click_id_address_and_customer_id_and_scrubbed(client, pool, world):
    a, b = world.a, world.b
    by_click = await add_conversion(pool, a, "o-1", click_id=world.s1[0], ip=S1_IP)
    by_customer = await add_conversion(pool, a, "o-2", customer_id="cus_123", ip=S2_IP)
    in_b = await add_conversion(pool, b, "o-1", customer_id="cus_123", ip=S1_IP)

    exported = (await post(client, a, "export", {"customer_id": "cus_123"})).json()
    assert exported["sources"] == ["conversions"]
    [conversion] = exported["conversions"]
    assert conversion["id"] == str(by_customer) and conversion["metadata"] == {"email": "someone@example.com"}
    assert conversion["ip"] == S2_IP and conversion["external_id"] == "o-2"
    assert [c["id"] for c in (await post(client, a, "export", {"click_id": world.s1[0]})).json()["conversions"]] \
        == [str(by_click)]
    assert [c["id"] for c in (await post(client, a, "export", {"ip": S1_IP})).json()["conversions"]] \
        == [str(by_click)]  # not B's

    money = "select id, status, sale_amount_minor, revenue_minor, payout_minor, currency, external_id, country" \
            " from conversions order by id"
    before = [tuple(r) for r in await pool.fetch(money)]
    erased = (await post(client, a, "erase", {"customer_id": "cus_123"})).json()
    assert erased["conversions_scrubbed"] == 1 and erased["clicks_scrubbed"] == 0
    assert (await post(client, a, "erase", {"ip": S1_IP})).json()["conversions_scrubbed"] == 1
    rows = {r["id"]: r for r in await pool.fetch("select * from conversions")}
    for scrubbed in (by_click, by_customer):
        assert all(rows[scrubbed][f] is None for f in ("ip", "user_agent", "customer_id", "metadata"))
    assert rows[in_b]["customer_id"] == "cus_123" and str(rows[in_b]["ip"]) == S1_IP  # another organization's
    assert [tuple(r) for r in await pool.fetch(money)] == before  # amounts and statuses stay
    assert (await post(client, a, "erase", {"customer_id": "cus_123"})).json()["conversions_scrubbed"] == 0


BAD = [
    {}, {"click_id": None}, {"ip": S1_IP, "click_id": new_click_id(NOW_MS)}, {"ip": "198.51.100.300"},
    {"ip": "not an ip"}, {"click_id": "abc"}, {"click_id": "G" * 44}, {"email_sha256": "ab" * 31},
    {"email_sha256": "x@example.com"}, {"customer_id": ""}, {"customer_id": "c" * 201}, {"name": "x"},
]


@pytest.mark.parametrize("body", BAD, ids=[str(b)[:40] for b in BAD])
async def test_bad_selectors_are_refused_and_nothing_is_written(client, pool, world, body):
    before = await pool.fetchval("select count(*) from audit_log")
    clicks = await rows_of(pool, world.s1)
    for what in ("export", "erase"):
        assert_error(await post(client, world.a, what, body), 422)
    assert await pool.fetchval("select count(*) from audit_log") == before
    assert await rows_of(pool, world.s1) == clicks


@pytest.mark.parametrize(("role", "status"), [("owner", 200), ("admin", 200), ("manager", 403), ("analyst", 403)])
async def test_only_owners_and_admins_handle_data_subjects(client, pool, role, status):
    tenant = await make_tenant(pool, "Roles", role=role)
    for what in ("export", "erase"):
        assert (await post(client, tenant, what, {"ip": S1_IP})).status_code == status
