"""The api process: ``create_app(settings)`` builds the Starlette app.

Lifespan opens the Postgres pool (as ``afftok_app``, under row-level security) and Redis
client and rewrites the edge's link configs from Postgres once, over a short-lived owner
connection, so Redis matches the source of truth before the first request.
"""

from __future__ import annotations

import contextlib
from typing import AsyncIterator

import asyncpg
import redis.asyncio as aioredis
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth import authenticate, authorize, token_verifier
from api.dashboard import ROUTES as DASHBOARD_ROUTES
from api.errors import HANDLED, handle_error
from api.openapi import openapi_json
from api.rate_limit import RateLimiter, enforce_rate_limit
from api.request_context import RequestContext
from api.resources import Resources
from api.routes import ENDPOINTS, Endpoint, Handler
from core.db import APP_ROLE, create_pool
from core.outbound_targets import OutboundPolicy, Resolver, system_resolver
from core.redis_keys import RedisKeys
from core.settings import Settings
from core.store.link_configs import sync_all_links
from core.store.postback_credentials import sync_all_postback_auth


def secured(endpoint: Endpoint) -> Handler:
    """Wrap a handler so it runs only for an authenticated, authorized principal within its rate limit."""
    if endpoint.action is None:
        return endpoint.handler
    handler, action = endpoint.handler, endpoint.action

    async def guarded(request: Request) -> Response:
        principal = await authenticate(request)
        rate_limit_headers = await enforce_rate_limit(request, principal)
        request.state.rate_limit_headers = rate_limit_headers  # error responses carry them too
        authorize(principal, action)
        request.state.principal = principal
        request.state.endpoint = endpoint  # api.audit names the action after it
        response = await handler(request)
        response.headers.update(rate_limit_headers)
        return response

    guarded.__name__ = handler.__module__.rsplit(".", 1)[-1] + "_" + handler.__name__
    return guarded


def _by_path() -> dict[str, dict[str, Handler]]:
    paths: dict[str, dict[str, Handler]] = {}
    for e in ENDPOINTS:
        paths.setdefault(e.path, {})[e.method] = secured(e)
    return paths


def _dispatch(by_method: dict[str, Handler]) -> Handler:
    """One route per path, so a 405 lists every allowed method."""

    async def endpoint(request: Request) -> Response:
        method = "GET" if request.method == "HEAD" else request.method
        return await by_method[method](request)

    return endpoint


async def _sync_links_as_owner(settings: Settings, redis: aioredis.Redis, keys: RedisKeys) -> None:
    """Every organization's links and postback credentials at once: system work, so the
    owner's login, not the api pool."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        await sync_all_links(conn, redis, keys)
        await sync_all_postback_auth(conn, redis, keys)
    finally:
        await conn.close()


def create_app(settings: Settings, *, resolver: Resolver = system_resolver) -> Starlette:
    """``resolver``: how endpoint URLs' names are looked up for the SSRF guard (tests fake it)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        token_verifier(settings)  # a bad JWT configuration (say, an unreadable JWKS file) stops startup
        outbound = OutboundPolicy.from_text(settings.delivery_allowed_ports, settings.delivery_allow_cidrs)  # likewise
        keys = RedisKeys(prefix=settings.redis_prefix, click_stream_shards=settings.click_stream_shards)
        pool = await create_pool(
            settings.app_database_url or settings.database_url, max_size=settings.api_db_pool_max_size,
            role=APP_ROLE,
        )
        redis = aioredis.Redis.from_url(settings.redis_url)
        try:
            await _sync_links_as_owner(settings, redis, keys)
            app.state.resources = Resources(
                settings=settings, pool=pool, redis=redis, keys=keys, outbound=outbound, resolver=resolver)
            app.state.rate_limiter = RateLimiter.from_settings(settings, redis, keys)
            yield
        finally:
            await redis.aclose()
            await pool.close()

    routes = [Route(path, _dispatch(by_method), methods=list(by_method)) for path, by_method in _by_path().items()]
    routes.append(Route("/openapi.json", openapi_json, methods=["GET"]))
    routes += DASHBOARD_ROUTES  # a public static page: it calls the secured routes with the user's key
    return Starlette(
        routes=routes,
        middleware=[Middleware(RequestContext)],
        exception_handlers={cls: handle_error for cls in HANDLED},
        lifespan=lifespan,
    )
