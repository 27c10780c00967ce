"""Steps shared by the CLI commands: migrate, seed the demo tenant, create keys."""

from __future__ import annotations

import datetime as dt

import redis.asyncio as aioredis

from core.db import connect
from core.migrate import apply_migrations
from core.redis_keys import RedisKeys
from core.settings import Settings


def _require_database(settings: Settings) -> str:
    if not settings.database_url:
        raise RuntimeError("DATABASE_URL is not set")
    return settings.database_url


async def migrate(settings: Settings) -> list[str]:
    conn = await connect(_require_database(settings))
    try:
        return await apply_migrations(conn, settings.migrations_dir)
    finally:
        await conn.close()


async def create_key(
    settings: Settings, org_id: str, name: str, role: str, test: bool, expires_at: dt.datetime | None, *,
    advertiser_id: str | None = None, affiliate_id: str | None = None,
) -> str:
    from core.store.api_keys import create_api_key

    conn = await connect(_require_database(settings))
    try:
        created = await create_api_key(
            conn, org_id, name=name, role=role, test=test, expires_at=expires_at,
            advertiser_id=advertiser_id, affiliate_id=affiliate_id,
        )
    finally:
        await conn.close()
    return created.key


async def seed_demo_and_publish(settings: Settings):
    """Create (or reuse) the demo tenant and make Redis hold every link's config and
    every postback credential."""
    from core.demo import seed_demo
    from core.store.link_configs import sync_all_links
    from core.store.postback_credentials import sync_all_postback_auth

    conn = await connect(_require_database(settings))
    redis = aioredis.Redis.from_url(settings.redis_url)
    try:
        demo = await seed_demo(conn)
        keys = RedisKeys(settings.redis_prefix, settings.click_stream_shards)
        await sync_all_links(conn, redis, keys)
        await sync_all_postback_auth(conn, redis, keys)
    finally:
        await conn.close()
        await redis.aclose()
    return demo
