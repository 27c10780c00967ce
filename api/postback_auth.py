"""Telling the edges about changed postback credentials, after the change committed.

A change to an advertiser's token or signing secrets, or to an API key that may send
conversions, is published from Postgres as it is once committed
(``core.store.postback_credentials``). ``gone`` names fields the change emptied that
Postgres no longer knows (a replaced token's), so they are removed too.

When Redis cannot be told: ``required`` changes (revocations, rotations of a secret or
token whose new value the caller already has) answer 503 ``publish_failed``, so the
caller knows the edge is not up to date yet; the others (a new API key, whose secret
is in this response only, a new advertiser) are logged and left to the next sync, at most 5 minutes.
Either way the change is saved and the maintenance resync repairs Redis.
"""

from __future__ import annotations

import logging
import uuid
from typing import Iterable

from redis.exceptions import RedisError
from starlette.requests import Request

from api.errors import PublishFailed
from api.resources import resources, tenant_transaction
from core.store.postback_credentials import (
    Loaded, advertiser_fields, key_fields, load_postback_auth, publish_postback_auth,
)

log = logging.getLogger("afftok.api")


async def publish_advertiser_auth(
    request: Request, org_id: uuid.UUID, advertiser_id: uuid.UUID, *, gone: Iterable[str] = (),
    required: bool = True,
) -> list[str]:
    """Publish the advertiser's ``adv:`` and ``tok:`` entries; remove ``gone``."""
    res = resources(request)

    async def load() -> Loaded:
        async with tenant_transaction(res, org_id) as conn:
            touched = await advertiser_fields(conn, org_id, advertiser_id) | set(gone)
            return await load_postback_auth(conn, org_id=org_id, advertiser_ids=[advertiser_id]), touched

    return await _publish(request, load, required=required)


async def publish_key_auth(
    request: Request, org_id: uuid.UUID, key_ids: list[uuid.UUID], *, required: bool = True,
) -> list[str]:
    """Publish (or remove) the ``key:`` entries of these API keys."""
    res = resources(request)

    async def load() -> Loaded:
        async with tenant_transaction(res, org_id) as conn:
            touched = await key_fields(conn, org_id, key_ids)
            return await load_postback_auth(conn, org_id=org_id, key_ids=key_ids), touched

    return await _publish(request, load, required=required)


async def publish_organization_auth(request: Request, org_id: uuid.UUID, *, required: bool = True) -> list[str]:
    """Republish every entry of the organization (its settings, such as ``ip_truncate``, changed)."""
    res = resources(request)

    async def load() -> Loaded:
        async with tenant_transaction(res, org_id) as conn:
            return await load_postback_auth(conn, org_id=org_id), set()

    return await _publish(request, load, required=required)


async def _publish(request: Request, load, *, required: bool) -> list[str]:
    res = resources(request)
    try:
        return await publish_postback_auth(res.redis, res.keys, load)
    except (RedisError, OSError) as exc:
        log.error("postback auth publish failed [%s]", request.state.correlation_id, exc_info=exc)
        if not required:
            return []
        raise PublishFailed(
            message="the change is saved, but the edge could not be told yet; it is repaired on the next sync"
        ) from exc
