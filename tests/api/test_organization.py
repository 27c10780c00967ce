"""/v1/organization: reading and changing the data settings (owner only), audited, and the
edge told at once when IP truncation changes."""

from __future__ import annotations

import uuid

import pytest
import pytest_asyncio

from core.models import advertiser_auth_decoder, link_config_decoder
from tests.api.conftest import assert_error, create_link, create_offer, make_tenant

DEFAULTS = {"ip_truncate": False, "clicks_retention_days": 90, "conversions_retention_days": 730}


@pytest_asyncio.fixture
async def owner(pool):
    return await make_tenant(pool, "Owned", role="owner")


async def audit_rows(pool, org_id: str) -> list[dict]:
    rows = await pool.fetch(
        "select action, target_type, target_id, before, after from audit_log where org_id = $1 order by id",
        uuid.UUID(org_id))
    return [dict(r) for r in rows]


async def test_the_organization_and_its_defaults(client, owner):
    response = await client.get("/v1/organization", headers=owner.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["id"], body["name"], body["plan"]) == (owner.org_id, "Owned", "starter")
    assert {k: body[k] for k in DEFAULTS} == DEFAULTS


async def test_the_owner_changes_settings_and_the_change_is_audited(client, pool, owner):
    response = await client.patch("/v1/organization", json={"clicks_retention_days": 30, "conversions_retention_days": 3650},
                                  headers=owner.headers)
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in DEFAULTS} == {
        "ip_truncate": False, "clicks_retention_days": 30, "conversions_retention_days": 3650}
    assert (await client.get("/v1/organization", headers=owner.headers)).json() == response.json()
    [row] = await audit_rows(pool, owner.org_id)
    assert (row["action"], row["target_type"], row["target_id"]) == ("organization.update", "organization", owner.org_id)
    assert (row["before"]["clicks_retention_days"], row["after"]["clicks_retention_days"]) == (90, 30)


async def test_turning_on_ip_truncation_republishes_the_links(client, redis, keys, owner):
    offer = await create_offer(client, owner)
    token = (await create_link(client, owner, offer["id"]))["token"]
    assert link_config_decoder.decode(await redis.hget(keys.link_configs, token)).ip_truncate is False
    response = await client.patch("/v1/organization", json={"ip_truncate": True}, headers=owner.headers)
    assert response.status_code == 200, response.text
    assert link_config_decoder.decode(await redis.hget(keys.link_configs, token)).ip_truncate is True
    await client.patch("/v1/organization", json={"ip_truncate": False}, headers=owner.headers)
    assert link_config_decoder.decode(await redis.hget(keys.link_configs, token)).ip_truncate is False


async def test_ip_truncation_reaches_the_pixel_through_the_advertisers_postback_entry(client, redis, keys, owner):
    field = f"adv:{owner.advertiser_id}"
    await client.patch("/v1/organization", json={"ip_truncate": True}, headers=owner.headers)
    assert advertiser_auth_decoder.decode(await redis.hget(keys.postback_auth, field)).ip_truncate is True
    await client.patch("/v1/organization", json={"ip_truncate": False}, headers=owner.headers)
    assert advertiser_auth_decoder.decode(await redis.hget(keys.postback_auth, field)).ip_truncate is False


BAD = [
    {"clicks_retention_days": 29}, {"clicks_retention_days": 731}, {"conversions_retention_days": 364},
    {"conversions_retention_days": 3651}, {"clicks_retention_days": "90"}, {"ip_truncate": "yes"},
    {"clicks_retention_days": 90.5}, {"plan": "enterprise"}, {"name": "Renamed"},
]


@pytest.mark.parametrize("body", BAD, ids=[str(b) for b in BAD])
async def test_bad_settings_are_refused_and_change_nothing(client, pool, owner, body):
    assert_error(await client.patch("/v1/organization", json=body, headers=owner.headers), 422)
    current = (await client.get("/v1/organization", headers=owner.headers)).json()
    assert {k: current[k] for k in DEFAULTS} == DEFAULTS and current["plan"] == "starter"
    assert await audit_rows(pool, owner.org_id) == []


@pytest.mark.parametrize(("role", "read", "manage"), [
    ("owner", 200, 200), ("admin", 200, 403), ("manager", 403, 403), ("analyst", 403, 403),
])
async def test_only_the_owner_manages_the_organization(client, pool, role, read, manage):
    tenant = await make_tenant(pool, "Roles", role=role)
    assert (await client.get("/v1/organization", headers=tenant.headers)).status_code == read
    response = await client.patch("/v1/organization", json={"ip_truncate": True}, headers=tenant.headers)
    assert response.status_code == manage, response.text
    if manage != 200:
        assert await audit_rows(pool, tenant.org_id) == []


async def test_each_organization_sees_and_changes_only_its_own(client, pool, owner):
    other = await make_tenant(pool, "Other", role="owner")
    await client.patch("/v1/organization", json={"clicks_retention_days": 45}, headers=owner.headers)
    theirs = (await client.get("/v1/organization", headers=other.headers)).json()
    assert (theirs["id"], theirs["clicks_retention_days"]) == (other.org_id, 90)
