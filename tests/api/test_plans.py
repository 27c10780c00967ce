"""Plans through the API: the active offers limit (402) and GET /v1/usage."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from core.plans import months_back, usage_month
from core.store.api_keys import create_api_key
from tests.api.conftest import LANDING, assert_error, create_offer


async def set_plan(pool, tenant, plan: str) -> None:
    await pool.execute("update organizations set plan = $2 where id = $1", uuid.UUID(tenant.org_id), plan)


async def active_offers(pool, tenant) -> int:
    return await pool.fetchval(
        "select count(*) from offers where org_id = $1 and status = 'active'", uuid.UUID(tenant.org_id))


async def post_offer(client, tenant, **overrides):
    body = {"advertiser_id": tenant.advertiser_id, "name": "Offer", "destination_url": LANDING, **overrides}
    return await client.post("/v1/offers", json=body, headers=tenant.headers)


async def fill_starter(client, tenant) -> list[dict]:
    return [await create_offer(client, tenant, name=f"Offer {n}") for n in range(5)]


def assert_plan_limit(response) -> None:
    body = assert_error(response, 402, "plan_limit_reached")
    message = body["message"]
    assert "starter" in message and "5 active offers" in message, message
    assert "pause or archive" in message and "upgrade" in message, message


async def test_a_sixth_active_offer_on_starter_is_refused_and_not_stored(client, pool, tenant):
    await fill_starter(client, tenant)
    offers_before = await pool.fetchval("select count(*) from offers")

    assert_plan_limit(await post_offer(client, tenant, name="Sixth"))

    assert await pool.fetchval("select count(*) from offers") == offers_before
    assert await active_offers(pool, tenant) == 5


async def test_paused_offers_do_not_count_but_activating_one_does(client, pool, tenant):
    offers = await fill_starter(client, tenant)
    paused = await create_offer(client, tenant, name="Waiting", status="paused")

    response = await client.patch(f"/v1/offers/{paused['id']}", json={"status": "active"}, headers=tenant.headers)
    assert_plan_limit(response)
    still = await client.get(f"/v1/offers/{paused['id']}", headers=tenant.headers)
    assert still.json()["status"] == "paused"

    # Other changes to a paused offer, and to active ones, are not limited.
    renamed = await client.patch(f"/v1/offers/{paused['id']}", json={"name": "Renamed"}, headers=tenant.headers)
    assert renamed.status_code == 200, renamed.text
    again = await client.patch(f"/v1/offers/{offers[0]['id']}", json={"status": "active"}, headers=tenant.headers)
    assert again.status_code == 200, again.text


async def test_pausing_one_makes_room_for_another(client, pool, tenant):
    offers = await fill_starter(client, tenant)
    paused = await client.patch(f"/v1/offers/{offers[0]['id']}", json={"status": "paused"}, headers=tenant.headers)
    assert paused.status_code == 200, paused.text

    created = await post_offer(client, tenant, name="Replacement")

    assert created.status_code == 201, created.text
    assert_plan_limit(await client.patch(
        f"/v1/offers/{offers[0]['id']}", json={"status": "active"}, headers=tenant.headers))
    archived = await client.patch(f"/v1/offers/{offers[1]['id']}", json={"status": "archived"}, headers=tenant.headers)
    assert archived.status_code == 200
    back = await client.patch(f"/v1/offers/{offers[0]['id']}", json={"status": "active"}, headers=tenant.headers)
    assert back.status_code == 200, back.text
    assert await active_offers(pool, tenant) == 5


@pytest.mark.parametrize("plan", ["professional", "enterprise"])
async def test_larger_plans_have_no_active_offers_limit(client, pool, tenant, plan):
    await set_plan(pool, tenant, plan)
    for n in range(7):
        await create_offer(client, tenant, name=f"Offer {n}")
    paused = await create_offer(client, tenant, name="Paused", status="paused")
    response = await client.patch(f"/v1/offers/{paused['id']}", json={"status": "active"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert await active_offers(pool, tenant) == 8


async def test_the_limit_is_per_organization(client, pool, tenant, other):
    await fill_starter(client, tenant)
    await create_offer(client, other)


async def test_concurrent_creations_never_pass_the_limit(client, pool, tenant):
    for n in range(3):
        await create_offer(client, tenant, name=f"Offer {n}")

    responses = await asyncio.gather(*(post_offer(client, tenant, name=f"Racer {n}") for n in range(6)))

    assert sorted(r.status_code for r in responses) == [201, 201, 402, 402, 402, 402]
    assert await active_offers(pool, tenant) == 5


async def test_a_missing_or_foreign_offer_is_not_found_even_when_the_plan_is_full(client, tenant, other):
    await fill_starter(client, tenant)
    theirs = await create_offer(client, other, status="paused")
    for offer_id in (str(uuid.uuid4()), theirs["id"]):
        response = await client.patch(f"/v1/offers/{offer_id}", json={"status": "active"}, headers=tenant.headers)
        assert_error(response, 404, "not_found")
    assert_error(await post_offer(client, tenant, advertiser_id=other.advertiser_id), 404, "not_found")


# GET /v1/usage


async def record_usage(pool, tenant, month: dt.date, events: int, overage: int) -> None:
    await pool.execute(
        "insert into usage_monthly (org_id, month, events, overage_events) values ($1, $2, $3, $4)",
        uuid.UUID(tenant.org_id), month, events, overage)


async def test_usage_shows_the_plan_this_month_and_the_last_twelve(client, pool, tenant, other):
    months = months_back(usage_month(dt.datetime.now(dt.timezone.utc)), 13)
    await record_usage(pool, tenant, months[0], 10_250, 250)
    await record_usage(pool, tenant, months[2], 4_000, 0)
    await record_usage(pool, tenant, months[12], 999, 0)  # 13 months ago: not shown
    await record_usage(pool, other, months[0], 7, 0)
    await create_offer(client, tenant)
    await create_offer(client, tenant, status="paused")

    response = await client.get("/v1/usage", headers=tenant.headers)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["plan"] == {"name": "starter", "tracked_events_per_month": 10_000, "active_offers_max": 5}
    assert (body["month"], body["events"], body["overage_events"]) == (months[0].isoformat(), 10_250, 250)
    assert body["active_offers"] == 1
    assert [m["month"] for m in body["months"]] == [m.isoformat() for m in months[:12]]
    assert [(m["events"], m["overage_events"]) for m in body["months"]] == (
        [(10_250, 250), (0, 0), (4_000, 0)] + [(0, 0)] * 9)


async def test_usage_of_a_new_organization_is_all_zeros(client, pool, tenant):
    await set_plan(pool, tenant, "enterprise")
    body = (await client.get("/v1/usage", headers=tenant.headers)).json()
    assert body["plan"] == {"name": "enterprise", "tracked_events_per_month": None, "active_offers_max": None}
    assert (body["events"], body["overage_events"], body["active_offers"]) == (0, 0, 0)
    assert len(body["months"]) == 12 and not any(m["events"] for m in body["months"])


@pytest.mark.parametrize("role, status", [
    ("owner", 200), ("admin", 200), ("manager", 200), ("analyst", 200), ("advertiser", 403), ("affiliate", 403),
])
async def test_who_may_read_usage(client, pool, tenant, role, status):
    scope = {"advertiser": {"advertiser_id": uuid.UUID(tenant.advertiser_id)},
             "affiliate": {"affiliate_id": uuid.UUID(tenant.affiliate_id)}}.get(role, {})
    async with pool.acquire() as conn:
        key = await create_api_key(conn, uuid.UUID(tenant.org_id), role, role, **scope)
    response = await client.get("/v1/usage", headers={"Authorization": f"Bearer {key.key}"})
    assert response.status_code == status, response.text
