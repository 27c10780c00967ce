"""Offers' commission rules, fraud policy and caps: validated at the boundary, stored,
shown by role, and a caps change republishes the offer's links."""

from __future__ import annotations

import pytest

from core.models import link_config_decoder
from core.store.api_keys import create_api_key
from tests.api.conftest import assert_error, create_link, create_offer

COMMISSION = {
    "goals": [
        {"revenue": {"type": "percentage", "bps": 1000}, "payout": {"type": "flat", "amount_minor": 300}},
        {"goal": "signup", "revenue": {"type": "flat", "amount_minor": 200}, "payout": {"type": "tiered", "tiers": [
            {"min_conversions": 0, "rule": {"type": "flat", "amount_minor": 50}},
            {"min_conversions": 10, "rule": {"type": "flat", "amount_minor": 80}},
        ]}},
    ],
    "overrides": [],
}
FRAUD = {"too_fast": "reject", "min_seconds_to_convert": 30, "click_flood_max_per_minute": 5}
CAPS = {"offer": {"daily_conversions": 100}, "per_affiliate": {"monthly_payout_minor": 50_000}, "over_cap": "pending"}


async def test_rules_are_stored_and_read_back(client, tenant):
    offer = await create_offer(client, tenant, commission=COMMISSION, fraud_policy=FRAUD, caps=CAPS)
    shown = (await client.get(f"/v1/offers/{offer['id']}", headers=tenant.headers)).json()
    for found in (offer, shown):
        assert found["commission"]["goals"][1]["payout"]["tiers"][1] == COMMISSION["goals"][1]["payout"]["tiers"][1]
        assert found["commission"]["goals"][0]["goal"] is None
        assert found["fraud_policy"]["too_fast"] == "reject" and found["fraud_policy"]["bot_user_agent"] == "flag"
        assert found["fraud_policy"]["click_flood_max_per_minute"] == 5
        assert found["caps"] == CAPS
    listed = (await client.get("/v1/offers", headers=tenant.headers)).json()["data"]
    assert listed[0]["caps"] == CAPS


async def test_defaults_and_replacing_each_rule(client, tenant):
    offer = await create_offer(client, tenant)
    assert offer["commission"] is None and offer["caps"] == {} and offer["fraud_policy"]["too_fast"] == "flag"
    patched = await client.patch(f"/v1/offers/{offer['id']}", json={"commission": COMMISSION, "caps": CAPS},
                                 headers=tenant.headers)
    assert patched.status_code == 200, patched.text
    assert patched.json()["caps"] == CAPS and len(patched.json()["commission"]["goals"]) == 2
    cleared = (await client.patch(f"/v1/offers/{offer['id']}", json={"commission": None, "caps": {}},
                                  headers=tenant.headers)).json()
    assert cleared["commission"] is None and cleared["caps"] == {}
    assert cleared["fraud_policy"] == offer["fraud_policy"]  # untouched


async def test_a_caps_change_republishes_the_offers_links(client, redis, keys, tenant):
    offer = await create_offer(client, tenant)
    link = await create_link(client, tenant, offer["id"])
    config = link_config_decoder.decode(await redis.hget(keys.link_configs, link["token"]))
    assert config.click_capped_until_ms == 0
    response = await client.patch(f"/v1/offers/{offer['id']}", json={"caps": {"offer": {"daily_clicks": 0}}},
                                  headers=tenant.headers)
    assert response.status_code == 200, response.text
    config = link_config_decoder.decode(await redis.hget(keys.link_configs, link["token"]))
    assert config.click_capped_until_ms > 0  # a cap of 0 clicks is reached at once: the fallback until the day ends


BAD_RULES = [
    ("commission", {"goals": []}, "commission"),
    ("commission", {"goals": [{"revenue": {"type": "flat", "amount_minor": -1},
                               "payout": {"type": "flat", "amount_minor": 1}}]}, "commission"),
    ("commission", {"goals": [{"revenue": {"type": "percentage", "bps": 10001},
                               "payout": {"type": "flat", "amount_minor": 1}}]}, "commission"),
    ("commission", {"goals": [{"revenue": {"type": "bogus"}, "payout": {"type": "flat", "amount_minor": 1}}]},
     "commission"),
    ("commission", {"goals": [{"revenue": {"type": "tiered", "tiers": [
        {"min_conversions": 5, "rule": {"type": "flat", "amount_minor": 1}}]},
        "payout": {"type": "flat", "amount_minor": 1}}]}, "commission"),
    ("commission", {"goals": [COMMISSION["goals"][0], COMMISSION["goals"][0]]}, "commission"),
    ("commission", "flat", "commission"),
    ("fraud_policy", {"too_fast": "block"}, "fraud_policy"),
    ("fraud_policy", {"min_seconds_to_convert": -1}, "fraud_policy"),
    ("fraud_policy", {"unknown_rule": "flag"}, "fraud_policy"),
    ("caps", {"offer": {"daily_clicks": -1}}, "caps"),
    ("caps", {"offer": {"daily_clicks": "10"}}, "caps"),
    ("caps", {"over_cap": "drop"}, "caps"),
    ("caps", {"per_affiliate": {"weekly_clicks": 5}}, "caps"),
    ("caps", None, "caps"),
]


@pytest.mark.parametrize("field, value, named", BAD_RULES, ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(BAD_RULES)])
async def test_bad_rules_are_422_naming_the_field_and_change_nothing(client, pool, tenant, field, value, named):
    offer = await create_offer(client, tenant)
    created = await client.post("/v1/offers", json={
        "advertiser_id": tenant.advertiser_id, "name": "Bad", "destination_url": "https://shop.example/", field: value,
    }, headers=tenant.headers)
    body = assert_error(created, 422)
    assert f"$.{named}" in body["message"], body
    patched = await client.patch(f"/v1/offers/{offer['id']}", json={field: value}, headers=tenant.headers)
    assert f"$.{named}" in assert_error(patched, 422)["message"]
    assert await pool.fetchval("select count(*) from offers") == 1
    row = await pool.fetchrow("select commission, fraud_policy, caps from offers")
    assert (row["commission"], row["fraud_policy"], row["caps"]) == (None, {}, {})


async def test_an_affiliate_sees_its_payout_rules_not_revenue_caps_or_policy(client, pool, tenant):
    commission = {**COMMISSION, "overrides": [
        {"affiliate_id": tenant.affiliate_id, "payout": {"type": "flat", "amount_minor": 400}},
        {"affiliate_id": "someone-else", "goal": "signup", "payout": {"type": "flat", "amount_minor": 999}},
        {"affiliate_id": tenant.affiliate_id, "goal": "upsell", "payout": {"type": "percentage", "bps": 500}},
    ]}
    offer = await create_offer(client, tenant, commission=commission, fraud_policy=FRAUD, caps=CAPS)
    async with pool.acquire() as conn:
        key = await create_api_key(conn, tenant.org_id, "aff", "affiliate", affiliate_id=tenant.affiliate_id)
        adv = await create_api_key(conn, tenant.org_id, "adv", "advertiser", advertiser_id=tenant.advertiser_id)
    shown = (await client.get(f"/v1/offers/{offer['id']}", headers={"Authorization": f"Bearer {key.key}"})).json()
    assert {"commission", "fraud_policy", "caps", "revenue_minor"}.isdisjoint(shown), shown
    assert "999" not in str(shown) and "1000" not in str(shown)  # another's override, the revenue percentage
    assert shown["payout_rules"] == [
        {"goal": None, "payout": {"type": "flat", "amount_minor": 400}},  # its override beats the offer's 300
        {"goal": "signup", "payout": COMMISSION["goals"][1]["payout"]},  # the offer's goal rule beats its default
        {"goal": "upsell", "payout": {"type": "percentage", "bps": 500}},  # its own goal, counted via the default
    ]
    as_advertiser = (await client.get(f"/v1/offers/{offer['id']}", headers={"Authorization": f"Bearer {adv.key}"})).json()
    assert as_advertiser["commission"]["overrides"] and "payout_rules" not in as_advertiser
