import datetime as dt

import pytest

from core import api_keys
from core.store.api_keys import create_api_key, revoke_api_key
from tests.api.conftest import assert_error, make_tenant

PAST = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)


async def _state(pool):
    return await pool.fetchval(
        "select md5(coalesce(string_agg(row_to_json(k)::text, ',' order by id), '')) from api_keys k"
    ), await pool.fetchval("select count(*) from advertisers")


async def test_the_database_holds_only_the_sha256_of_a_key(pool, tenant):
    row = await pool.fetchrow("select * from api_keys where org_id = $1", tenant.org_id)
    assert bytes(row["key_hash"]) == api_keys.hash_key(tenant.key)
    assert (row["prefix"], row["last4"]) == (tenant.key[:13], tenant.key[-4:])
    everything = await pool.fetchval("select string_agg(row_to_json(k)::text, '') from api_keys k")
    assert tenant.key not in everything and tenant.key[13:-4] not in everything


async def test_bearer_and_x_api_key_both_work_and_mark_the_key_used(client, pool, tenant):
    assert await pool.fetchval("select last_used_at from api_keys where org_id = $1", tenant.org_id) is None
    assert (await client.get("/v1/advertisers", headers={"X-Api-Key": tenant.key})).status_code == 200
    assert (await client.get("/v1/advertisers", headers=tenant.headers)).status_code == 200
    assert await pool.fetchval("select last_used_at from api_keys where org_id = $1", tenant.org_id) is not None


@pytest.mark.parametrize("kind", ["missing", "empty_bearer", "basic", "malformed", "unknown", "expired", "revoked", "test_prefix_swap"])
async def test_bad_keys_get_401_json_and_nothing_is_written(client, pool, tenant, kind):
    async with pool.acquire() as conn:
        if kind == "expired":
            key = (await create_api_key(conn, tenant.org_id, "old", expires_at=PAST)).key
        elif kind == "revoked":
            created = await create_api_key(conn, tenant.org_id, "gone")
            await revoke_api_key(conn, tenant.org_id, created.record.id, PAST)
            key = created.key
    headers = {
        "missing": {},
        "empty_bearer": {"Authorization": "Bearer "},
        "basic": {"Authorization": "Basic dXNlcjpwYXNz"},
        "malformed": {"Authorization": "Bearer not-a-key"},
        "unknown": {"Authorization": f"Bearer {api_keys.generate_key()}"},
        "expired": {"Authorization": f"Bearer {key}"} if kind == "expired" else {},
        "revoked": {"Authorization": f"Bearer {key}"} if kind == "revoked" else {},
        "test_prefix_swap": {"X-Api-Key": "aft_test_" + tenant.key[9:]},
    }[kind]
    before = await _state(pool)
    response = await client.post("/v1/advertisers", json={"name": "Sneaky"}, headers=headers)
    assert_error(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert await _state(pool) == before


async def test_a_read_only_key_reads_but_cannot_write(client, pool):
    reader = await make_tenant(pool, "Readers", role="analyst")
    assert (await client.get("/v1/offers", headers=reader.headers)).status_code == 200
    before = await _state(pool)
    assert_error(await client.post("/v1/advertisers", json={"name": "x"}, headers=reader.headers), 403, "forbidden")
    assert (await _state(pool))[1] == before[1]


async def test_public_routes_need_no_key(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/openapi.json")).status_code == 200
