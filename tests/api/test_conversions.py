"""/v1/conversions: the filtered list, one conversion with its history, manual status
changes (audited, with history, deltas and the affiliate's outbox event), by role."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
import pytest_asyncio

from core.store.advertisers import create_advertiser
from core.store.affiliates import create_affiliate
from core.store.api_keys import create_api_key
from tests.api.conftest import assert_error, create_offer
from tests.api.test_principals import jwt_client  # noqa: F401  (a fixture)

T0 = dt.datetime(2026, 3, 1, 12, tzinfo=dt.timezone.utc)


async def add_conversion(
    pool, org_id, advertiser_id, *, offer_id=None, affiliate_id=None, status="pending", reason=None, minutes=0,
    external_id=None, click_id=None, revenue=250, payout=150,
) -> str:
    """A stored conversion (as the worker would leave it) and its creation history row."""
    at = T0 + dt.timedelta(minutes=minutes)
    earned = status == "approved"
    async with pool.acquire() as conn, conn.transaction():
        conversion_id = await conn.fetchval(
            "insert into conversions (org_id, advertiser_id, click_id, offer_id, affiliate_id, external_id, status,"
            " reason, sale_amount_minor, sale_currency, revenue_minor, payout_minor, currency, rule_applied,"
            " order_id, customer_id, metadata, ip, user_agent, source, postback_id, received_at, created_at)"
            " values ($1, $2, $3, $4, $5, $6, $7, $8, 9900, 'USD', $9, $10, 'USD', 'revenue=offer/default/flat',"
            " 'ord-1', 'cust-1', '{\"plan\": \"gold\"}', '198.51.100.4', 'Mozilla/5.0', 'postback', $11, $12, $12)"
            " returning id",
            uuid.UUID(str(org_id)), uuid.UUID(str(advertiser_id)), click_id, offer_id and uuid.UUID(str(offer_id)),
            affiliate_id and uuid.UUID(str(affiliate_id)), external_id or f"order-{uuid.uuid4().hex[:8]}", status,
            reason, revenue, payout, uuid.uuid4().hex, at,
        )
        await conn.execute(
            "insert into conversion_status_history (org_id, conversion_id, to_status, actor, revenue_delta_minor,"
            " payout_delta_minor, currency) values ($1, $2, $3, 'postback:token', $4, $5, 'USD')",
            uuid.UUID(str(org_id)), conversion_id, status, revenue if earned else 0, payout if earned else 0,
        )
    return str(conversion_id)


def _bearer(key) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.key}"}


class Shop:
    """One organization: two advertisers, two affiliates, an offer each, five conversions."""

    def __init__(self, tenant, offer, other_offer, other_advertiser, other_affiliate, ids):
        self.tenant, self.offer, self.other_offer = tenant, offer, other_offer
        self.other_advertiser, self.other_affiliate, self.ids = other_advertiser, other_affiliate, ids


@pytest_asyncio.fixture
async def shop(client, pool, tenant) -> Shop:
    async with pool.acquire() as conn:
        adv2 = str((await create_advertiser(conn, tenant.org_id, "Second advertiser")).id)
        aff2 = str((await create_affiliate(conn, tenant.org_id, "Second affiliate")).id)
    offer = await create_offer(client, tenant)
    other_offer = await create_offer(client, tenant, advertiser_id=adv2, name="Other")
    org, adv, aff = tenant.org_id, tenant.advertiser_id, tenant.affiliate_id
    ids = {
        "pending": await add_conversion(pool, org, adv, offer_id=offer["id"], affiliate_id=aff, minutes=1,
                                        external_id="A-1", click_id="click-1"),
        "approved": await add_conversion(pool, org, adv, offer_id=offer["id"], affiliate_id=aff, status="approved",
                                         minutes=2),
        "unknown": await add_conversion(pool, org, adv, status="rejected", reason="unknown_click", minutes=3),
        "other_affiliate": await add_conversion(pool, org, adv, offer_id=offer["id"], affiliate_id=aff2, minutes=4),
        "other_advertiser": await add_conversion(pool, org, adv2, offer_id=other_offer["id"], affiliate_id=aff,
                                                 minutes=5, reason="cap_reached"),
    }
    return Shop(tenant, offer, other_offer, adv2, aff2, ids)


async def _list(client, headers, **params) -> list[str]:
    response = await client.get("/v1/conversions", params=params, headers=headers)
    assert response.status_code == 200, response.text
    return [c["id"] for c in response.json()["data"]]


async def test_the_list_is_newest_first_and_pages(client, shop):
    ids, headers = shop.ids, shop.tenant.headers
    newest_first = [ids[k] for k in ("other_advertiser", "other_affiliate", "unknown", "approved", "pending")]
    assert await _list(client, headers) == newest_first
    first = (await client.get("/v1/conversions", params={"limit": 2}, headers=headers)).json()
    second = (await client.get("/v1/conversions", params={"limit": 2, "cursor": first["next_cursor"]},
                               headers=headers)).json()
    third = (await client.get("/v1/conversions", params={"limit": 2, "cursor": second["next_cursor"]},
                              headers=headers)).json()
    assert [c["id"] for c in first["data"] + second["data"] + third["data"]] == newest_first
    assert third["next_cursor"] is None


async def test_each_filter(client, shop):
    ids, headers, t = shop.ids, shop.tenant.headers, shop.tenant
    cases = [
        ({"status": "approved"}, ["approved"]),
        ({"status": "rejected", "reason": "unknown_click"}, ["unknown"]),
        ({"reason": "cap_reached"}, ["other_advertiser"]),
        ({"offer_id": shop.other_offer["id"]}, ["other_advertiser"]),
        ({"affiliate_id": shop.other_affiliate}, ["other_affiliate"]),
        ({"advertiser_id": shop.other_advertiser}, ["other_advertiser"]),
        ({"advertiser_id": t.advertiser_id, "affiliate_id": t.affiliate_id}, ["approved", "pending"]),
        ({"click_id": "click-1"}, ["pending"]),
        ({"external_id": "A-1"}, ["pending"]),
        ({"created_from": (T0 + dt.timedelta(minutes=2)).isoformat(),
          "created_to": (T0 + dt.timedelta(minutes=4)).isoformat()}, ["unknown", "approved"]),
        ({"status": "reversed"}, []),
    ]
    for params, expected in cases:
        assert await _list(client, headers, **params) == [ids[k] for k in expected], params


@pytest.mark.parametrize("params", [
    {"status": "lost"}, {"offer_id": "not-a-uuid"}, {"created_from": "2026-03-01T00:00:00"}, {"limit": "0"},
    {"limit": "201"}, {"cursor": "garbage"}, {"external_id": ""}, {"click_id": "x" * 201}, {"sort": "amount"},
])
async def test_bad_list_queries_are_422(client, shop, params):
    assert_error(await client.get("/v1/conversions", params=params, headers=shop.tenant.headers), 422)


async def test_one_conversion_with_its_history(client, shop):
    response = await client.get(f"/v1/conversions/{shop.ids['approved']}", headers=shop.tenant.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["status"], body["revenue_minor"], body["payout_minor"], body["currency"]) == ("approved", 250, 150, "USD")
    assert (body["sale_amount_minor"], body["metadata"], body["ip"]) == (9900, {"plan": "gold"}, "198.51.100.4")
    assert [(h["from_status"], h["to_status"], h["actor"], h["revenue_delta_minor"], h["payout_delta_minor"])
            for h in body["history"]] == [(None, "approved", "postback:token", 250, 150)]
    assert_error(await client.get(f"/v1/conversions/{uuid.uuid4()}", headers=shop.tenant.headers), 404, "not_found")
    assert_error(await client.get("/v1/conversions/nope", headers=shop.tenant.headers), 404, "not_found")


async def _change(client, headers, conversion_id, status, reason="checked by hand", **kw):
    return await client.post(f"/v1/conversions/{conversion_id}/status", json={"status": status, "reason": reason},
                             headers={**headers, **kw})


async def test_approve_then_reverse_by_hand_nets_to_zero_with_history_audit_and_outbox(client, pool, shop):
    conversion_id, headers = shop.ids["pending"], shop.tenant.headers
    key_id = await pool.fetchval("select id::text from api_keys where org_id = $1", uuid.UUID(shop.tenant.org_id))
    approved = await _change(client, headers, conversion_id, "approved", "looks real", **{"X-Request-Id": "req-approve-1"})
    assert approved.status_code == 200, approved.text
    assert (approved.json()["status"], approved.json()["reason"]) == ("approved", "looks real")
    reversed_ = await _change(client, headers, conversion_id, "reversed", "refunded")
    assert reversed_.status_code == 200, reversed_.text
    history = reversed_.json()["history"]
    assert [(h["from_status"], h["to_status"], h["reason"], h["actor"]) for h in history[1:]] == [
        ("pending", "approved", "looks real", f"api_key:{key_id}"),
        ("approved", "reversed", "refunded", f"api_key:{key_id}"),
    ]
    assert history[1]["correlation_id"] == "req-approve-1"
    assert sum(h["payout_delta_minor"] for h in history) == 0 and sum(h["revenue_delta_minor"] for h in history) == 0
    assert [h["payout_delta_minor"] for h in history] == [0, 150, -150]
    audit = await pool.fetch(
        "select action, actor_id, target_type, target_id, before, after, correlation_id from audit_log"
        " where target_type = 'conversion' order by id")
    assert [(a["action"], a["actor_id"], a["target_id"]) for a in audit] == [
        ("conversions.change_status", key_id, conversion_id)] * 2
    assert (audit[0]["before"]["status"], audit[0]["after"]["status"], audit[0]["correlation_id"]) == (
        "pending", "approved", "req-approve-1")
    events = await pool.fetch("select event_type from outbox_events where conversion_id = $1 order by id",
                              uuid.UUID(conversion_id))
    assert [e["event_type"] for e in events] == ["conversion.approved", "conversion.reversed"]


@pytest.mark.parametrize("start, target", [
    ("pending", "reversed"), ("approved", "approved"), ("approved", "rejected"), ("unknown", "approved"),
])
async def test_a_disallowed_move_is_409_and_writes_nothing(client, pool, shop, start, target):
    conversion_id = shop.ids[start]
    before = await _state(pool, conversion_id)
    assert_error(await _change(client, shop.tenant.headers, conversion_id, target), 409, "invalid_transition")
    assert await _state(pool, conversion_id) == before


async def _state(pool, conversion_id) -> tuple:
    cid = uuid.UUID(conversion_id)
    return (
        await pool.fetchval("select status || coalesce(reason, '') from conversions where id = $1", cid),
        await pool.fetchval("select count(*) from conversion_status_history where conversion_id = $1", cid),
        await pool.fetchval("select count(*) from outbox_events"),
        await pool.fetchval("select count(*) from audit_log"),
    )


@pytest.mark.parametrize("body", [
    {"status": "approved"}, {"status": "approved", "reason": ""}, {"status": "pending", "reason": "x"},
    {"status": "APPROVED", "reason": "x"}, {"status": "approved", "reason": "x" * 501},
    {"status": "approved", "reason": "x", "payout_minor": 0}, {"reason": "x"}, ["approved"],
])
async def test_bad_status_bodies_are_422_and_write_nothing(client, pool, shop, body):
    before = await _state(pool, shop.ids["pending"])
    response = await client.post(f"/v1/conversions/{shop.ids['pending']}/status", json=body, headers=shop.tenant.headers)
    assert_error(response, 422)
    assert await _state(pool, shop.ids["pending"]) == before


async def test_an_unknown_conversion_is_404(client, shop):
    assert_error(await _change(client, shop.tenant.headers, str(uuid.uuid4()), "approved"), 404, "not_found")


async def _key(pool, tenant, role, **scope):
    async with pool.acquire() as conn:
        return await create_api_key(conn, tenant.org_id, role, role, **scope)


async def test_an_analyst_reads_but_does_not_change(client, pool, shop):
    analyst = _bearer(await _key(pool, shop.tenant, "analyst"))
    assert len(await _list(client, analyst)) == 5
    assert_error(await _change(client, analyst, shop.ids["pending"], "approved"), 403, "forbidden")
    manager = _bearer(await _key(pool, shop.tenant, "manager"))
    assert (await _change(client, manager, shop.ids["pending"], "approved")).status_code == 200


async def test_an_advertiser_sees_its_own_with_revenue_not_payout(client, pool, shop):
    ids = shop.ids
    headers = _bearer(await _key(pool, shop.tenant, "advertiser", advertiser_id=shop.tenant.advertiser_id))
    assert await _list(client, headers) == [ids[k] for k in ("other_affiliate", "unknown", "approved", "pending")]
    assert await _list(client, headers, advertiser_id=shop.other_advertiser) == []
    body = (await client.get(f"/v1/conversions/{ids['approved']}", headers=headers)).json()
    assert body["revenue_minor"] == 250 and body["external_id"]
    assert {"payout_minor", "rule_applied"}.isdisjoint(body)
    assert "payout_delta_minor" not in body["history"][0] and body["history"][0]["revenue_delta_minor"] == 250
    other = await client.get(f"/v1/conversions/{ids['other_advertiser']}", headers=headers)
    assert_error(other, 404, "not_found")
    assert_error(await _change(client, headers, ids["pending"], "approved"), 403, "forbidden")


async def test_an_affiliate_sees_its_own_with_payout_not_the_advertisers_side(client, pool, shop):
    ids = shop.ids
    headers = _bearer(await _key(pool, shop.tenant, "affiliate", affiliate_id=shop.tenant.affiliate_id))
    assert await _list(client, headers) == [ids[k] for k in ("other_advertiser", "approved", "pending")]
    page = (await client.get("/v1/conversions", headers=headers)).json()
    body = (await client.get(f"/v1/conversions/{ids['approved']}", headers=headers)).json()
    for shown in page["data"] + [body]:
        assert shown["payout_minor"] == 150
        hidden = {"revenue_minor", "advertiser_id", "external_id", "sale_amount_minor", "sale_currency", "order_id",
                  "customer_id", "metadata", "ip", "user_agent", "rule_applied", "product_id", "postback_id"}
        assert hidden.isdisjoint(shown), hidden & set(shown)
    assert "9900" not in str(page) and "ord-1" not in str(page) and "198.51.100.4" not in str(page)
    assert {"revenue_delta_minor", "actor"}.isdisjoint(body["history"][0])
    assert_error(await client.get(f"/v1/conversions/{ids['other_affiliate']}", headers=headers), 404, "not_found")
    assert_error(await client.get("/v1/conversions", params={"external_id": "A-1"}, headers=headers), 403)
    assert_error(await client.get("/v1/conversions", params={"advertiser_id": shop.tenant.advertiser_id},
                                  headers=headers), 403)


async def test_another_organizations_conversion_is_exactly_a_missing_one(client, pool, shop, other):
    theirs = await add_conversion(pool, other.org_id, other.advertiser_id, status="pending")
    headers = shop.tenant.headers
    for path in (f"/v1/conversions/{theirs}", f"/v1/conversions/{uuid.uuid4()}"):
        assert_error(await client.get(path, headers=headers), 404, "not_found")
    foreign = await _change(client, headers, theirs, "approved")
    missing = await _change(client, headers, str(uuid.uuid4()), "approved")
    assert_error(foreign, 404, "not_found")
    assert foreign.json()["message"] == missing.json()["message"]
    assert theirs not in str(await _list(client, headers))
    assert await pool.fetchval("select status from conversions where id = $1", uuid.UUID(theirs)) == "pending"


async def test_a_dashboard_users_change_names_the_user(jwt_client, pool, shop):
    from tests.api.test_principals import _token

    response = await _change(jwt_client, _token(shop.tenant.org_id, "manager"), shop.ids["pending"], "rejected")
    assert response.status_code == 200, response.text
    assert response.json()["history"][-1]["actor"] == "user:user-7"
    assert await pool.fetchval("select actor_id from audit_log where target_type = 'conversion'") == "user-7"
