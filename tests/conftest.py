"""Test harness: real Postgres and real Redis, started here unless URLs are given.

- ``TEST_DATABASE_URL`` / ``TEST_REDIS_URL`` point the suite at existing servers (it
  creates and drops databases ``afftok_t_*`` there and uses its own key prefixes);
  otherwise the harness starts its own servers in a temporary directory, exactly as
  ``afftok up`` would, and stops them at the end.
- Each test gets its own database, cloned from a migrated template, and its own Redis
  key prefix, so tests never see each other's data.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from afftok.servers import PostgresServer, RedisServer
from core.migrate import apply_migrations
from core.redis_keys import RedisKeys
from core.settings import REPO_ROOT, load_settings

TEMPLATE_DB = "afftok_t_template"


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    head = base.rsplit("/", 1)[0]
    return f"{head}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def servers_dir():
    with tempfile.TemporaryDirectory(prefix="afftok-tests-") as d:
        yield Path(d)


@pytest.fixture(scope="session")
def postgres_admin_url(servers_dir):
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield given
        return
    server = PostgresServer(servers_dir / "postgres", durable=False).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server(servers_dir):
    """The suite's Redis. ``None`` when TEST_REDIS_URL points at an existing one."""
    if os.environ.get("TEST_REDIS_URL"):
        yield None
        return
    server = RedisServer(servers_dir / "redis").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server):
    return os.environ.get("TEST_REDIS_URL") or redis_server.url


@pytest_asyncio.fixture(scope="session")
async def template_database(postgres_admin_url):
    conn = await asyncpg.connect(postgres_admin_url)
    try:
        await conn.execute(f"drop database if exists {TEMPLATE_DB} with (force)")
        await conn.execute(f"create database {TEMPLATE_DB}")
    finally:
        await conn.close()
    conn = await asyncpg.connect(_with_database(postgres_admin_url, TEMPLATE_DB))
    try:
        await apply_migrations(conn, REPO_ROOT / "migrations")
    finally:
        await conn.close()
    return TEMPLATE_DB


@pytest_asyncio.fixture
async def database_url(postgres_admin_url, template_database):
    name = f"afftok_t_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f"create database {name} template {template_database} strategy file_copy")
        yield _with_database(postgres_admin_url, name)
        await admin.execute(f"drop database if exists {name} with (force)")
    finally:
        await admin.close()


@pytest_asyncio.fixture
async def pool(database_url):
    from core.db import create_pool

    p = await create_pool(database_url, min_size=1, max_size=5)
    yield p
    await p.close()


@pytest.fixture
def redis_prefix():
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def keys(redis_prefix):
    return RedisKeys(prefix=redis_prefix)


@pytest_asyncio.fixture
async def redis(redis_url, redis_prefix):
    client = aioredis.Redis.from_url(redis_url)
    yield client
    async for key in client.scan_iter(match=f"{redis_prefix}:*", count=1000):
        await client.delete(key)
    await client.aclose()


@pytest.fixture
def settings(database_url, redis_url, redis_prefix, tmp_path):
    return load_settings(
        {}, database_url=database_url, redis_url=redis_url, redis_prefix=redis_prefix,
        data_dir=tmp_path / "data", spool_fsync=False,
    )
