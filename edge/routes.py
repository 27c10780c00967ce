"""Everything at the edge that is not a click: health, readiness, metrics, errors.

A Starlette app; the click path never goes through it (see ``edge.app``).
"""

from __future__ import annotations

import asyncio

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.errors import code_for_status, error_body

READY_PING_TIMEOUT_S = 0.5


def _error_response(request: Request, code: str) -> Response:
    status, body = error_body(code, request.headers.get("x-request-id", "").encode("latin-1") or None)
    return Response(body, status_code=status, media_type="application/json", headers={"cache-control": "no-store"})


async def _http_error(request: Request, exc: HTTPException) -> Response:
    return _error_response(request, code_for_status(exc.status_code))


async def _server_error(request: Request, exc: Exception) -> Response:
    return _error_response(request, "internal_error")


def make_routes_app(runtime, registry: CollectorRegistry, lifespan) -> Starlette:
    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        redis_ok = False
        try:
            async with asyncio.timeout(READY_PING_TIMEOUT_S):
                redis_ok = bool(await runtime.redis.ping())
        except Exception:
            pass
        auth_loaded = runtime.postback_auth.loaded
        ready = redis_ok and runtime.cache.loaded and auth_loaded
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "redis": redis_ok, "config_loaded": runtime.cache.loaded,
             "postback_auth_loaded": auth_loaded},
            status_code=200 if ready else 503,
        )

    async def metrics(request: Request) -> Response:
        data = await asyncio.to_thread(generate_latest, registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
