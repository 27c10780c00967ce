"""/v1/admin/api-keys: create, list, get, rotate, revoke, and what each does to authentication."""

import datetime as dt
import uuid

import pytest

from core.store.api_keys import create_api_key
from tests.api.conftest import assert_error

KEYS = "/v1/admin/api-keys"
PAST = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)


async def _headers(pool, org_id, role="owner", **kw) -> dict[str, str]:
    async with pool.acquire() as conn:
        created = await create_api_key(conn, org_id, role, role, **kw)
    return {"Authorization": f"Bearer {created.key}"}


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _state(pool) -> str:
    return await pool.fetchval(
        "select md5(coalesce(string_agg(row_to_json(k)::text, ',' order by id), '')) from"
        " (select id, name, role, expires_at, revoked_at, revoked_reason, replaced_by, grace_until,"
        "  rotated_from, advertiser_id, affiliate_id from api_keys) k"
    )


async def _works(client, key: str) -> int:
    return (await client.get("/v1/offers", headers=_bearer(key))).status_code


async def test_create_shows_the_key_once_and_never_again(client, pool, tenant):
    response = await client.post(KEYS, json={"name": "CI", "role": "analyst"}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    key = created["key"]
    assert key.startswith("aft_live_") and created["prefix"] == key[:13] and created["last4"] == key[-4:]
    assert created["role"] == "analyst" and created["name"] == "CI"
    assert await _works(client, key) == 200

    listed = await client.get(KEYS, headers=tenant.headers)
    one = await client.get(f"{KEYS}/{created['id']}", headers=tenant.headers)
    for response in (listed, one):
        assert response.status_code == 200
        assert key not in response.text and key[13:-4] not in response.text
        assert "key_hash" not in response.text and '"key"' not in response.text
    assert created["id"] in {k["id"] for k in listed.json()["data"]}
    assert one.json()["prefix"] == created["prefix"]


async def test_a_test_key_with_an_expiry_and_a_scope(client, pool, tenant):
    expires = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=1)).isoformat()
    body = {"name": "Partner", "role": "affiliate", "affiliate_id": tenant.affiliate_id, "expires_at": expires, "test": True}
    response = await client.post(KEYS, json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["key"].startswith("aft_test_") and created["affiliate_id"] == tenant.affiliate_id
    assert created["expires_at"] is not None
    assert await _works(client, created["key"]) == 200


@pytest.mark.parametrize(("granter", "role", "status"), [
    ("owner", "owner", 201), ("owner", "admin", 201), ("admin", "admin", 201), ("admin", "manager", 201),
    ("admin", "owner", 403), ("manager", "analyst", 403), ("analyst", "analyst", 403),
])
async def test_who_may_create_which_keys(client, pool, tenant, granter, role, status):
    headers = await _headers(pool, tenant.org_id, granter)
    before = await _state(pool)
    response = await client.post(KEYS, json={"name": "new", "role": role}, headers=headers)
    if status == 201:
        assert response.status_code == 201, response.text
    else:
        assert_error(response, status, "forbidden")
        assert await _state(pool) == before


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"name": "x", "role": "advertiser"}, 422, "invalid_scope"),
    ({"name": "x", "role": "affiliate", "advertiser_id": "ADV"}, 422, "invalid_scope"),
    ({"name": "x", "role": "admin", "affiliate_id": "AFF"}, 422, "invalid_scope"),
    ({"name": "x", "role": "read_only"}, 422, "invalid_request"),
    ({"name": "x", "role": "root"}, 422, "invalid_request"),
    ({"name": "", "role": "admin"}, 422, "invalid_request"),
    ({"name": "x", "role": "admin", "expires_at": "2030-01-01T00:00:00"}, 422, "invalid_request"),
    ({"name": "x", "role": "admin", "key_hash": "00"}, 422, "invalid_request"),
    ({"name": "x", "role": "advertiser", "advertiser_id": "OTHER_ADV"}, 404, "not_found"),
    ({"name": "x", "role": "affiliate", "affiliate_id": str(uuid.uuid4())}, 404, "not_found"),
])
async def test_bad_creates_are_refused_and_write_nothing(client, pool, tenant, other, body, status, code):
    subst = {"ADV": tenant.advertiser_id, "AFF": tenant.affiliate_id, "OTHER_ADV": other.advertiser_id}
    body = {k: subst.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    before = await _state(pool)
    assert_error(await client.post(KEYS, json=body, headers=tenant.headers), status, code)
    assert await _state(pool) == before


async def _create(client, tenant, **body) -> dict:
    response = await client.post(KEYS, json={"name": "rotating", "role": "manager", **body}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def test_rotation_old_key_works_during_grace_then_401(client, pool, tenant):
    old = await _create(client, tenant)
    response = await client.post(f"{KEYS}/{old['id']}/rotate", json={"grace_period_s": 3600}, headers=tenant.headers)
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["key"] != old["key"] and new["rotated_from"] == old["id"]
    assert (new["role"], new["name"]) == (old["role"], old["name"])
    assert response.headers["cache-control"] == "no-store"
    assert await _works(client, old["key"]) == 200 and await _works(client, new["key"]) == 200
    stored = (await client.get(f"{KEYS}/{old['id']}", headers=tenant.headers)).json()
    assert stored["replaced_by"] == new["id"] and stored["grace_until"] is not None

    # Time passes: the grace period ends.
    await pool.execute("update api_keys set grace_until = $2 where id = $1", uuid.UUID(old["id"]), PAST)
    assert_error(await client.get("/v1/offers", headers=_bearer(old["key"])), 401, "api_key_rotated")
    assert await _works(client, new["key"]) == 200


async def test_rotation_keeps_the_scope(client, pool, tenant):
    old = await _create(client, tenant, role="advertiser", advertiser_id=tenant.advertiser_id)
    new = (await client.post(f"{KEYS}/{old['id']}/rotate", json={}, headers=tenant.headers)).json()
    assert new["role"] == "advertiser" and new["advertiser_id"] == tenant.advertiser_id
    grace = dt.datetime.fromisoformat(
        (await client.get(f"{KEYS}/{old['id']}", headers=tenant.headers)).json()["grace_until"]
    ) - dt.datetime.now(dt.timezone.utc)
    assert dt.timedelta(hours=23) < grace <= dt.timedelta(days=1)  # the default grace period


async def test_rotation_without_grace_stops_the_old_key_at_once(client, pool, tenant):
    old = await _create(client, tenant)
    response = await client.post(f"{KEYS}/{old['id']}/rotate", json={"grace_period_s": 0}, headers=tenant.headers)
    assert response.status_code == 201
    assert_error(await client.get("/v1/offers", headers=_bearer(old["key"])), 401, "api_key_rotated")


async def test_rotating_twice_or_a_revoked_key_is_a_conflict(client, pool, tenant):
    old = await _create(client, tenant)
    assert (await client.post(f"{KEYS}/{old['id']}/rotate", json={}, headers=tenant.headers)).status_code == 201
    before = await _state(pool)
    assert_error(await client.post(f"{KEYS}/{old['id']}/rotate", json={}, headers=tenant.headers), 409, "api_key_already_rotated")
    assert await _state(pool) == before
    gone = await _create(client, tenant)
    await client.post(f"{KEYS}/{gone['id']}/revoke", json={"reason": "leaked"}, headers=tenant.headers)
    before = await _state(pool)
    assert_error(await client.post(f"{KEYS}/{gone['id']}/rotate", json={}, headers=tenant.headers), 409, "api_key_revoked")
    assert await _state(pool) == before


@pytest.mark.parametrize("body", [{"grace_period_s": -1}, {"grace_period_s": 30 * 86400 + 1}, {"grace_period_s": "1h"}, {"grace": 1}])
async def test_bad_grace_periods_are_refused(client, pool, tenant, body):
    old = await _create(client, tenant)
    before = await _state(pool)
    assert_error(await client.post(f"{KEYS}/{old['id']}/rotate", json=body, headers=tenant.headers), 422, "invalid_request")
    assert await _state(pool) == before


async def test_revocation_is_immediate_and_a_second_revoke_changes_nothing(client, pool, tenant):
    victim = await _create(client, tenant)
    assert await _works(client, victim["key"]) == 200
    response = await client.post(f"{KEYS}/{victim['id']}/revoke", json={"reason": "leaked in CI logs"}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    first = response.json()
    assert first["revoked_reason"] == "leaked in CI logs" and first["revoked_at"] is not None
    assert_error(await client.get("/v1/offers", headers=_bearer(victim["key"])), 401, "api_key_revoked")

    again = await client.post(f"{KEYS}/{victim['id']}/revoke", json={"reason": "another reason"}, headers=tenant.headers)
    assert again.status_code == 200 and again.json() == first


async def test_revoking_a_key_during_its_grace_period_stops_it(client, pool, tenant):
    old = await _create(client, tenant)
    new = (await client.post(f"{KEYS}/{old['id']}/rotate", json={}, headers=tenant.headers)).json()
    await client.post(f"{KEYS}/{old['id']}/revoke", json={"reason": "rotation done"}, headers=tenant.headers)
    assert_error(await client.get("/v1/offers", headers=_bearer(old["key"])), 401, "api_key_revoked")
    assert await _works(client, new["key"]) == 200


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "x" * 501}, {"reason": None}])
async def test_revoke_needs_a_reason(client, pool, tenant, body):
    victim = await _create(client, tenant)
    before = await _state(pool)
    assert_error(await client.post(f"{KEYS}/{victim['id']}/revoke", json=body, headers=tenant.headers), 422)
    assert await _state(pool) == before
    assert await _works(client, victim["key"]) == 200


async def test_an_expired_key_gets_its_own_code(client, pool, tenant):
    async with pool.acquire() as conn:
        key = (await create_api_key(conn, tenant.org_id, "old", expires_at=PAST)).key
    assert_error(await client.get("/v1/offers", headers=_bearer(key)), 401, "api_key_expired")


async def test_an_admin_cannot_rotate_or_revoke_an_owner_key(client, pool, tenant):
    async with pool.acquire() as conn:
        owner = await create_api_key(conn, tenant.org_id, "boss", "owner")
    admin = await _headers(pool, tenant.org_id, "admin")
    before = await _state(pool)
    for action, body in (("rotate", {}), ("revoke", {"reason": "coup"})):
        response = await client.post(f"{KEYS}/{owner.record.id}/{action}", json=body, headers=admin)
        assert_error(response, 403, "forbidden")
    assert await _state(pool) == before
    assert await _works(client, owner.key) == 200


@pytest.mark.parametrize(("method", "suffix", "body"), [
    ("GET", "", None), ("POST", "/rotate", {}), ("POST", "/revoke", {"reason": "x"}),
])
async def test_another_organizations_key_reads_like_a_missing_one(client, pool, tenant, other, method, suffix, body):
    foreign_id = await pool.fetchval("select id from api_keys where org_id = $1", uuid.UUID(other.org_id))
    before = await _state(pool)
    foreign = await client.request(method, f"{KEYS}/{foreign_id}{suffix}", json=body, headers=tenant.headers)
    missing = await client.request(method, f"{KEYS}/{uuid.uuid4()}{suffix}", json=body, headers=tenant.headers)
    a, b = assert_error(foreign, 404, "not_found"), assert_error(missing, 404, "not_found")
    assert a["message"] == b["message"]
    assert await _state(pool) == before
    assert await _works(client, other.key) == 200
