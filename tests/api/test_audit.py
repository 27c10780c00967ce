"""The audit log: every mutating route writes exactly one row, in the change's transaction.

The walk goes over ``api.routes.ENDPOINTS``: a new mutating route fails here until it is
audited and has a row in ``EXPECTED`` (and a sample body in tests/api/test_isolation.py).
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any, Callable

import asyncpg
import msgspec
import pytest
import pytest_asyncio

from api.app import create_app
from api.routes import ENDPOINTS, Endpoint
from core.db import APP_ROLE, create_pool
from core.store.api_keys import create_api_key
from tests.api.conftest import assert_error, make_tenant
from tests.api.test_isolation import _PARAM, fill, missing_id, sample_body
from tests.tenant_rows import seed_organization

MUTATING = [e for e in ENDPOINTS if e.method in ("POST", "PUT", "PATCH", "DELETE")]
USER_AGENT = "audit-test/1.0"


def _response_id(response, ids) -> str:
    return response.json()["id"]


def _ids(*names: str) -> Callable[[Any, dict[str, str]], str]:
    return lambda response, ids: "/".join(ids[n] for n in names)


def _digest_of(value: str) -> Callable[[Any, dict[str, str]], str]:
    return lambda response, ids: hashlib.sha256(value.encode()).hexdigest()


# (method, path) -> (action, target_type, the target id from (response, ids)). Written out.
EXPECTED: dict[tuple[str, str], tuple[str, str, Callable[[Any, dict[str, str]], str]]] = {
    ("POST", "/v1/advertisers"): ("advertisers.create", "advertiser", _response_id),
    ("POST", "/v1/affiliates"): ("affiliates.create", "affiliate", _response_id),
    ("PATCH", "/v1/affiliates/{affiliate_id}"): ("affiliates.update", "affiliate", _ids("affiliate_id")),
    ("POST", "/v1/offers"): ("offers.create", "offer", _response_id),
    ("PATCH", "/v1/offers/{offer_id}"): ("offers.update", "offer", _ids("offer_id")),
    ("PUT", "/v1/offers/{offer_id}/affiliates/{affiliate_id}"): (
        "offers.set_approval", "offer_approval", _ids("offer_id", "affiliate_id")),
    ("POST", "/v1/links"): ("links.create", "link", _response_id),
    ("POST", "/v1/admin/api-keys"): ("api_keys.create", "api_key", _response_id),
    ("POST", "/v1/admin/api-keys/{key_id}/rotate"): ("api_keys.rotate", "api_key", _ids("key_id")),
    ("POST", "/v1/admin/api-keys/{key_id}/revoke"): ("api_keys.revoke", "api_key", _ids("key_id")),
    ("PATCH", "/v1/organization"): ("organization.update", "organization", _ids("org_id")),
    ("POST", "/v1/privacy/export"): ("privacy.export", "ip", _digest_of("203.0.113.7")),
    ("POST", "/v1/privacy/erase"): ("privacy.erase", "ip", _digest_of("203.0.113.7")),
    ("POST", "/v1/advertisers/{advertiser_id}/postback-token"): (
        "advertisers.issue_postback_token", "advertiser", _ids("advertiser_id")),
    ("POST", "/v1/advertisers/{advertiser_id}/signing-secrets"): ("signing_secrets.create", "signing_secret", _response_id),
    ("DELETE", "/v1/advertisers/{advertiser_id}/signing-secrets/{secret_id}"): (
        "signing_secrets.revoke", "signing_secret", _ids("secret_id")),
    ("POST", "/v1/conversions/{conversion_id}/status"): ("conversions.change_status", "conversion", _ids("conversion_id")),
    ("POST", "/v1/exports"): ("exports.create", "export_job", _response_id),
    ("POST", "/v1/webhooks"): ("webhooks.create", "webhook", _response_id),
    ("PATCH", "/v1/webhooks/{webhook_id}"): ("webhooks.update", "webhook", _ids("webhook_id")),
    ("DELETE", "/v1/webhooks/{webhook_id}"): ("webhooks.delete", "webhook", _ids("webhook_id")),
    ("POST", "/v1/webhooks/{webhook_id}/secrets"): ("webhook_secrets.rotate", "webhook_secret", _response_id),
    ("POST", "/v1/affiliate-postbacks"): ("affiliate_postbacks.create", "affiliate_postback", _response_id),
    ("PATCH", "/v1/affiliate-postbacks/{affiliate_postback_id}"): (
        "affiliate_postbacks.update", "affiliate_postback", _ids("affiliate_postback_id")),
    ("DELETE", "/v1/affiliate-postbacks/{affiliate_postback_id}"): (
        "affiliate_postbacks.delete", "affiliate_postback", _ids("affiliate_postback_id")),
    ("POST", "/v1/deliveries/replay"): ("deliveries.replay_dead", "delivery_endpoint", _ids("endpoint_id")),
    ("POST", "/v1/deliveries/{delivery_id}/replay"): ("deliveries.replay", "delivery", _ids("delivery_id")),
}


def route_id(e: Endpoint) -> str:
    return f"{e.method} {e.path}"


class Caller(msgspec.Struct, kw_only=True):
    ids: dict[str, str]
    key: str
    key_id: str

    def headers(self, correlation_id: str = "") -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.key}", "User-Agent": USER_AGENT}
        return {**headers, "X-Request-Id": correlation_id} if correlation_id else headers


@pytest_asyncio.fixture
async def caller(pool) -> Caller:
    """An organization with a row of every kind, and an owner key (every action)."""
    async with pool.acquire() as conn:
        ids = await seed_organization(conn, "Audited")
        owner = await create_api_key(conn, ids["org_id"], "owner", "owner")
    return Caller(ids=ids, key=owner.key, key_id=str(owner.record.id))


async def audit_rows(pool, org_id: str, after_id: int = 0) -> list[dict]:
    rows = await pool.fetch(
        "select id, actor_type, actor_id, action, target_type, target_id, before, after, correlation_id,"
        " host(client_ip) as client_ip, user_agent from audit_log where org_id = $1 and id > $2 order by id",
        uuid.UUID(org_id), after_id)
    return [dict(r) for r in rows]


async def last_audit_id(pool) -> int:
    return await pool.fetchval("select coalesce(max(id), 0) from audit_log")


async def request(client, caller: Caller, e: Endpoint, ids: dict[str, str], body: Any = None, correlation_id: str = ""):
    path = _PARAM.sub(lambda m: ids[m.group(1)], e.path)
    body = fill(sample_body(e), ids) if body is None else body
    kwargs = {} if body is None else {"json": body}
    return await client.request(e.method, path, headers=caller.headers(correlation_id), **kwargs)


def test_every_mutating_route_has_an_expected_audit_row():
    missing = [route_id(e) for e in MUTATING if (e.method, e.path) not in EXPECTED]
    assert not missing, f"add these routes to EXPECTED (and audit them with api.audit.audited): {missing}"


@pytest.mark.parametrize("e", MUTATING, ids=route_id)
async def test_every_mutating_route_writes_exactly_one_audit_row(client, pool, caller, e):
    action, target_type, target_id = EXPECTED[(e.method, e.path)]
    before = await last_audit_id(pool)
    correlation_id = f"audit-{uuid.uuid4().hex[:12]}"
    response = await request(client, caller, e, caller.ids, correlation_id=correlation_id)
    assert response.status_code < 300, response.text
    rows = await audit_rows(pool, caller.ids["org_id"], before)
    assert len(rows) == 1, rows
    row = rows[0]
    assert (row["action"], row["actor_type"], row["actor_id"]) == (action, "api_key", caller.key_id)
    assert (row["target_type"], row["target_id"]) == (target_type, target_id(response, caller.ids))
    assert (row["correlation_id"], row["user_agent"]) == (correlation_id, USER_AGENT)
    assert row["client_ip"] == "127.0.0.1"  # httpx's ASGI transport peer
    if e.method == "DELETE" and response.status_code == 204:  # nothing after: the row is what was deleted
        assert row["before"] is not None and row["after"] is None
    else:
        assert row["after"] is not None


@pytest.mark.parametrize("e", MUTATING, ids=route_id)
async def test_a_refused_call_writes_no_audit_row(client, pool, caller, e):
    before = await last_audit_id(pool)
    names = _PARAM.findall(e.path)
    if e.body is not None:
        bad = {**fill(sample_body(e), caller.ids), "not_a_field": 1}
        assert_error(await request(client, caller, e, caller.ids, body=bad), 422)
    if names:  # a missing id is found missing inside the audited transaction
        assert_error(await request(client, caller, e, {**caller.ids, **{n: missing_id(n) for n in names}}), 404)
    assert await audit_rows(pool, caller.ids["org_id"], before) == []


async def test_a_domain_error_after_the_write_rolls_back_the_change_and_writes_nothing(client, pool, caller):
    offer_id = caller.ids["offer_id"]
    stored = await pool.fetchrow("select * from offers where id = $1", uuid.UUID(offer_id))
    before = await last_audit_id(pool)
    response = await client.patch(f"/v1/offers/{offer_id}", json={"name": "Changed", "geo_allow": ["DE"],
                                  "geo_deny": ["DE"]}, headers=caller.headers())
    assert_error(response, 422)
    assert await pool.fetchrow("select * from offers where id = $1", uuid.UUID(offer_id)) == stored
    assert await audit_rows(pool, caller.ids["org_id"], before) == []


async def test_a_second_rotation_is_refused_and_only_the_first_is_audited(client, pool, caller):
    before = await last_audit_id(pool)
    path = f"/v1/admin/api-keys/{caller.ids['key_id']}/rotate"
    assert (await client.post(path, json={}, headers=caller.headers())).status_code == 201
    assert_error(await client.post(path, json={}, headers=caller.headers()), 409)
    assert [r["action"] for r in await audit_rows(pool, caller.ids["org_id"], before)] == ["api_keys.rotate"]


async def test_a_change_whose_audit_row_cannot_be_written_is_not_saved(client, pool, caller, monkeypatch):
    import api.audit

    async def refuse(conn, event):
        raise asyncpg.exceptions.CheckViolationError("audit row refused")

    monkeypatch.setattr(api.audit, "record_audit", refuse)
    response = await client.post("/v1/advertisers", json={"name": "Unaudited"}, headers=caller.headers())
    assert_error(response, 500)
    assert await pool.fetchval("select count(*) from advertisers where name = 'Unaudited'") == 0


async def test_before_and_after_are_the_records(client, pool, caller):
    before = await last_audit_id(pool)
    response = await client.patch(f"/v1/offers/{caller.ids['offer_id']}", json={"name": "Renamed", "payout_minor": 250},
                                  headers=caller.headers())
    assert response.status_code == 200, response.text
    [row] = await audit_rows(pool, caller.ids["org_id"], before)
    assert (row["before"]["name"], row["after"]["name"]) == ("Audited offer", "Renamed")
    assert (row["before"]["payout_minor"], row["after"]["payout_minor"]) == (0, 250)
    assert row["after"] == response.json()


async def test_new_keys_are_audited_without_the_key_or_its_hash(client, pool, caller):
    before = await last_audit_id(pool)
    created = await client.post("/v1/admin/api-keys", json={"name": "ci", "role": "analyst"}, headers=caller.headers())
    rotated = await client.post(f"/v1/admin/api-keys/{created.json()['id']}/rotate", json={"grace_period_s": 60},
                                headers=caller.headers())
    assert created.status_code == rotated.status_code == 201
    rows = await audit_rows(pool, caller.ids["org_id"], before)
    assert [r["action"] for r in rows] == ["api_keys.create", "api_keys.rotate"]
    text = msgspec.json.encode(rows).decode()
    for secret in (created.json()["key"], rotated.json()["key"]):
        assert secret not in text and hashlib.sha256(secret.encode()).hexdigest() not in text
        assert secret[-4:] in text  # last4 is shown, as everywhere else
    assert "key_hash" not in text
    assert rows[1]["before"]["rotated"]["replaced_by"] is None
    assert rows[1]["after"]["rotated"]["replaced_by"] == rotated.json()["id"]
    assert rows[1]["after"]["replacement"] == {k: v for k, v in rotated.json().items() if k != "key"}


@pytest.mark.parametrize(("trusted", "expected"), [(False, "127.0.0.1"), (True, "198.51.100.9")])
async def test_forwarded_for_is_the_client_address_only_when_trusted(api_settings, pool, caller, trusted, expected):
    import httpx

    app = create_app(msgspec.structs.replace(api_settings, trust_forwarded_for=trusted))
    before = await last_audit_id(pool)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api.test"
    ) as client:
        headers = {**caller.headers(), "X-Forwarded-For": "198.51.100.9, 10.0.0.1"}
        assert (await client.post("/v1/advertisers", json={"name": "Fwd"}, headers=headers)).status_code == 201
    [row] = await audit_rows(pool, caller.ids["org_id"], before)
    assert row["client_ip"] == expected


async def test_an_overlong_user_agent_is_bounded(client, pool, caller):
    before = await last_audit_id(pool)
    headers = {**caller.headers(), "User-Agent": "x" * 5000}
    assert (await client.post("/v1/advertisers", json={"name": "UA"}, headers=headers)).status_code == 201
    [row] = await audit_rows(pool, caller.ids["org_id"], before)
    assert row["user_agent"] == "x" * 512


# Reading it: GET /v1/audit-log.

async def _three_advertisers(client, caller) -> list[str]:
    ids = []
    for n in range(3):
        response = await client.post("/v1/advertisers", json={"name": f"Adv {n}"}, headers=caller.headers())
        ids.append(response.json()["id"])
    return ids


async def test_the_log_is_newest_first_and_pages_by_cursor(client, caller):
    created = await _three_advertisers(client, caller)
    seen, cursor = [], None
    while True:
        params = {"limit": 2, "action": "advertisers.create", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/audit-log", params=params, headers=caller.headers())).json()
        seen.extend(page["data"])
        if not (cursor := page["next_cursor"]):
            break
    # the three new rows, newest first, then the seeded one
    assert [r["target_id"] for r in seen] == [*reversed(created), caller.ids["advertiser_id"]]
    assert [r["id"] for r in seen] == sorted({r["id"] for r in seen}, reverse=True)


async def test_the_log_filters(client, caller):
    created = await _three_advertisers(client, caller)
    everything = (await client.get("/v1/audit-log", params={"limit": 200}, headers=caller.headers())).json()["data"]
    newest = everything[0]

    async def found(**params) -> list[str | None]:
        response = await client.get("/v1/audit-log", params=params, headers=caller.headers())
        assert response.status_code == 200, response.text
        return [r["target_id"] for r in response.json()["data"]]

    assert await found(target_id=created[1]) == [created[1]]
    assert await found(target_type="advertiser", actor_id=caller.key_id) == list(reversed(created))
    assert await found(action="offers.update") == []
    assert await found(since=newest["occurred_at"]) == [r["target_id"] for r in everything if r["occurred_at"] >= newest["occurred_at"]]
    assert await found(until=newest["occurred_at"], actor_id=caller.key_id) == [
        r["target_id"] for r in everything if r["occurred_at"] < newest["occurred_at"] and r["actor_id"] == caller.key_id]


@pytest.mark.parametrize("params", [
    {"cursor": "not-a-cursor"}, {"since": "2026-01-01T00:00:00"}, {"until": "yesterday"}, {"limit": 0},
    {"action": ""}, {"unknown": "x"},
])
async def test_bad_log_queries_are_refused(client, caller, params):
    assert_error(await client.get("/v1/audit-log", params=params, headers=caller.headers()), 422)


@pytest.mark.parametrize(("role", "status"), [("owner", 200), ("admin", 200), ("manager", 403), ("analyst", 403)])
async def test_only_owners_and_admins_read_the_log(client, pool, role, status):
    tenant = await make_tenant(pool, "Roles", role=role)
    assert (await client.get("/v1/audit-log", headers=tenant.headers)).status_code == status


# Append-only, in the database.

@pytest_asyncio.fixture
async def app_pool(database_url):
    p = await create_pool(database_url, min_size=1, max_size=1, role=APP_ROLE)
    yield p
    await p.close()


@pytest.mark.parametrize("sql", [
    "update audit_log set action = 'forged'",
    "delete from audit_log",
    "truncate audit_log",
])
async def test_the_app_role_cannot_change_or_delete_audit_rows(app_pool, pool, caller, sql):
    before = await audit_rows(pool, caller.ids["org_id"])
    async with app_pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            async with conn.transaction():
                await conn.execute("select set_config('afftok.org_id', $1, true)", caller.ids["org_id"])
                await conn.execute(sql)
    assert await audit_rows(pool, caller.ids["org_id"]) == before


async def test_the_app_role_appends_only_for_its_organization(app_pool, caller, pool):
    other = await make_tenant(pool, "Other")
    async with app_pool.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with conn.transaction():
                await conn.execute("select set_config('afftok.org_id', $1, true)", caller.ids["org_id"])
                await conn.execute(
                    "insert into audit_log (org_id, actor_type, actor_id, action, target_type)"
                    " values ($1, 'system', 'x', 'forged', 'x')", uuid.UUID(other.org_id))


async def test_even_the_owner_cannot_edit_a_row_or_delete_one_younger_than_a_year(pool, caller):
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="never changed"):
        await pool.execute("update audit_log set action = 'forged'")
    assert await pool.execute("delete from audit_log") == "DELETE 0"
    assert await pool.fetchval("select count(*) from audit_log") >= 1
