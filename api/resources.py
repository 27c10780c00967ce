"""What every handler shares: the pool, Redis, key names and settings, built in lifespan,
and the SSRF guard's policy and resolver that endpoint URLs are checked with when saved.

The pool logs in as (or ``SET ROLE``s to) ``afftok_app``, which sees only the rows of the
organization set for the current transaction (row-level security, migrations/0003).
``tenant_transaction`` is the one way api code reaches tenant data: it opens a
transaction and sets the organization for that transaction only, so a pooled connection
never carries one tenant into another's request. Code that forgets it sees no rows.
``credential_transaction`` is for authentication alone, before the tenant is known.
``publish_affected`` republishes the edge config of the links a committed change touched.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from typing import AsyncIterator

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError
from starlette.requests import Request

from api.errors import PublishFailed
from core.outbound_targets import OutboundPolicy, Resolver
from core.redis_keys import RedisKeys
from core.settings import Settings
from core.store.link_configs import load_link_configs, publish_links

log = logging.getLogger("afftok.api")


class Resources(msgspec.Struct, frozen=True, kw_only=True):
    settings: Settings
    pool: asyncpg.Pool
    redis: aioredis.Redis
    keys: RedisKeys
    outbound: OutboundPolicy  # from settings.delivery_allowed_ports / delivery_allow_cidrs
    resolver: Resolver  # the system's; tests give a fake


def resources(request: Request) -> Resources:
    return request.app.state.resources


@contextlib.asynccontextmanager
async def tenant_transaction(source: Request | Resources, org_id: uuid.UUID) -> AsyncIterator[asyncpg.Connection]:
    """A transaction that sees and writes only ``org_id``'s rows."""
    pool = (source if isinstance(source, Resources) else resources(source)).pool
    async with pool.acquire() as conn, conn.transaction():
        # is_local=true: the setting ends with this transaction, commit or rollback.
        await conn.execute("select set_config('afftok.org_id', $1, true)", str(org_id))
        yield conn


@contextlib.asynccontextmanager
async def credential_transaction(request: Request) -> AsyncIterator[asyncpg.Connection]:
    """A transaction with no tenant: no tenant rows, only the credential lookup functions."""
    async with resources(request).pool.acquire() as conn, conn.transaction():
        yield conn


async def publish_affected(
    request: Request, org_id: uuid.UUID, *, offer_id: uuid.UUID | None = None,
    affiliate_id: uuid.UUID | None = None, token: str | None = None,
) -> int:
    """Publish the current config of the matching links; call only after commit."""
    res = resources(request)
    async with tenant_transaction(res, org_id) as conn:
        configs = await load_link_configs(
            conn, str(org_id), offer_id=offer_id and str(offer_id),
            affiliate_id=affiliate_id and str(affiliate_id), token=token,
        )
    try:
        await publish_links(res.redis, res.keys, configs)
    except (RedisError, OSError) as exc:
        log.error("link config publish failed [%s]", request.state.correlation_id, exc_info=exc)
        raise PublishFailed(
            message="the change is saved, but the edge could not be told yet; it is repaired on the next sync"
        ) from exc
    return len(configs)
