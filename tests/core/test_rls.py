"""Row-level security: the api's role sees one organization per transaction, or nothing.

The ``pool`` fixture logs in as the owner (trusted system code); ``app`` is a pool that
runs as ``afftok_app`` exactly as the api's does.
"""

from __future__ import annotations

import asyncpg
import pytest
import pytest_asyncio

from core import api_keys
from core.db import APP_ROLE, create_pool
from tests.tenant_rows import SEEDED_TABLES, seed_organization


@pytest_asyncio.fixture
async def orgs(pool):
    async with pool.acquire() as conn:
        return await seed_organization(conn, "A"), await seed_organization(conn, "B")


@pytest_asyncio.fixture
async def app(database_url):
    p = await create_pool(database_url, min_size=1, max_size=1, role=APP_ROLE)
    yield p
    await p.close()


async def set_org(conn: asyncpg.Connection, org_id: str) -> None:
    await conn.execute("select set_config('afftok.org_id', $1, true)", org_id)


async def test_the_app_role_without_the_setting_sees_no_rows(pool, app, orgs):
    async with pool.acquire() as owner, app.acquire() as conn:
        for table in SEEDED_TABLES:
            assert await owner.fetchval(f"select count(*) from {table}") >= 2, table
            assert await conn.fetchval(f"select count(*) from {table}") == 0, table
        assert await conn.fetchval("select current_user") == APP_ROLE


async def test_every_table_the_app_role_can_read_is_empty_without_the_setting(pool, app, orgs):
    async with app.acquire() as conn:
        readable = await conn.fetch(
            "select c.relname from pg_class c where c.relnamespace = 'public'::regnamespace"
            " and c.relkind in ('r', 'p', 'v', 'm') and has_table_privilege(c.oid, 'select')")
        for r in readable:
            assert await conn.fetchval(f'select count(*) from "{r["relname"]}"') == 0, r["relname"]


async def test_every_table_with_an_org_id_forces_the_tenant_policy(pool):
    async with pool.acquire() as conn:
        tables = await conn.fetch(
            "select c.relname, c.relrowsecurity, c.relforcerowsecurity,"
            "       exists(select from pg_policy p where p.polrelid = c.oid and p.polname = 'tenant_isolation') as policy"
            " from pg_class c where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p')"
            " and not c.relispartition"
            " and (c.relname = 'organizations' or exists("
            "     select from pg_attribute a where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped))")
    assert {t["relname"] for t in tables} >= set(SEEDED_TABLES)
    for t in tables:
        assert t["relrowsecurity"] and t["relforcerowsecurity"] and t["policy"], t["relname"]


async def test_with_the_setting_the_app_role_sees_only_that_organization(pool, app, orgs):
    a, _ = orgs
    async with pool.acquire() as owner, app.acquire() as conn, conn.transaction():
        await set_org(conn, a["org_id"])
        for table, column in SEEDED_TABLES.items():
            seen = await conn.fetch(f"select {column} as org from {table}")
            expected = await owner.fetchval(f"select count(*) from {table} where {column} = $1", a["org_id"])
            assert expected >= 1 and len(seen) == expected, table
            assert {str(r["org"]) for r in seen} == {a["org_id"]}, table


WRITES_INTO_OTHER_ORG = [
    ("advertisers", "insert into advertisers (org_id, name) values ($1, 'x')"),
    ("affiliates", "insert into affiliates (org_id, name) values ($1, 'x')"),
    ("api_keys", "insert into api_keys (org_id, prefix, last4, key_hash) values ($1, 'p', 'l', 'h'::bytea)"),
    ("offers", "insert into offers (org_id, advertiser_id, name, destination_url)"
               " select $1, id, 'x', 'https://x.example/' from advertisers limit 1"),
    ("moved out", "update advertisers set org_id = $1"),
]


@pytest.mark.parametrize("what, sql", WRITES_INTO_OTHER_ORG, ids=[w for w, _ in WRITES_INTO_OTHER_ORG])
async def test_a_row_for_another_organization_is_refused(pool, app, orgs, what, sql):
    a, b = orgs
    async with app.acquire() as conn:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            async with conn.transaction():
                await set_org(conn, a["org_id"])
                await conn.execute(sql, b["org_id"])


async def test_another_organizations_rows_cannot_be_changed(pool, app, orgs):
    a, b = orgs
    async with pool.acquire() as owner:
        before = await owner.fetch("select * from advertisers order by id")
    async with app.acquire() as conn, conn.transaction():
        await set_org(conn, a["org_id"])
        assert await conn.execute("update advertisers set name = 'taken' where id = $1", b["advertiser_id"]) == "UPDATE 0"
        assert await conn.execute("update organizations set name = 'taken' where id = $1", b["org_id"]) == "UPDATE 0"
        assert await conn.execute("update api_keys set revoked_at = now() where id = $1", b["key_id"]) == "UPDATE 0"
    async with pool.acquire() as owner:
        assert await owner.fetch("select * from advertisers order by id") == before


FORBIDDEN = [
    "select * from schema_migrations",
    "update schema_migrations set applied_at = now()",
    "delete from advertisers",
    "delete from api_keys",
    "delete from clicks",
    "insert into organizations (name) values ('new')",
    "truncate advertisers",
    "alter table advertisers disable row level security",
    "create table mine (id int)",
]


@pytest.mark.parametrize("sql", FORBIDDEN)
async def test_the_app_role_cannot_do_what_the_api_never_does(app, orgs, sql):
    a, _ = orgs
    async with app.acquire() as conn:
        with pytest.raises((asyncpg.InsufficientPrivilegeError, asyncpg.exceptions.InsufficientPrivilegeError)):
            async with conn.transaction():
                await set_org(conn, a["org_id"])
                await conn.execute(sql)


async def test_the_setting_ends_with_its_transaction_on_the_same_connection(app, orgs):
    a, _ = orgs
    async with app.acquire() as conn:
        async with conn.transaction():
            await set_org(conn, a["org_id"])
            assert await conn.fetchval("select count(*) from advertisers") == 1
        assert await conn.fetchval("select count(*) from advertisers") == 0
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await set_org(conn, a["org_id"])
                raise RuntimeError("rolled back")
        async with conn.transaction():
            assert await conn.fetchval("select afftok_current_org()") is None
            assert await conn.fetchval("select count(*) from advertisers") == 0


async def test_pooled_connections_stay_the_app_role_between_checkouts(app):
    for _ in range(3):  # max_size=1: the same connection, reset by the pool each time
        async with app.acquire() as conn:
            assert await conn.fetchval("select current_user") == APP_ROLE


async def test_the_app_role_is_powerless_and_owns_nothing(pool):
    async with pool.acquire() as conn:
        role = await conn.fetchrow("select * from pg_roles where rolname = $1", APP_ROLE)
        assert not role["rolsuper"] and not role["rolbypassrls"] and not role["rolcanlogin"]
        assert not role["rolcreaterole"] and not role["rolcreatedb"]
        owned = await conn.fetchval(
            "select count(*) from pg_class where relowner = $1::regrole", APP_ROLE)
        owned += await conn.fetchval("select count(*) from pg_proc where proowner = $1::regrole", APP_ROLE)
        owned += await conn.fetchval("select count(*) from pg_namespace where nspowner = $1::regrole", APP_ROLE)
        assert owned == 0
        # and is a member of no other role, so it inherits nothing
        assert await conn.fetchval("select count(*) from pg_auth_members where member = $1::regrole", APP_ROLE) == 0


async def test_keys_are_found_by_hash_before_the_tenant_is_known(pool, app, orgs):
    a, _ = orgs
    async with app.acquire() as conn:
        row = await conn.fetchrow("select * from afftok_api_key_by_hash($1)", api_keys.hash_key(a["key"]))
        assert (str(row["id"]), str(row["org_id"])) == (a["key_id"], a["org_id"])
        assert await conn.fetchrow(
            "select * from afftok_api_key_by_hash($1)", api_keys.hash_key(api_keys.generate_key())) is None
    async with pool.acquire() as owner:
        public_can_run = await owner.fetchval(
            "select exists(select from pg_proc p, aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) acl"
            " where p.proname = 'afftok_api_key_by_hash' and acl.grantee = 0)")
        assert not public_can_run
