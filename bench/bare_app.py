"""Baseline (b): the least a Starlette app can do to answer a click.

One route, a 302 to a landing URL carrying a fresh click id and the sub ids, with
``Cache-Control: no-store`` — the response the edge gives, minus config lookup, click
recording and Redis. ``bench.run`` serves it with the edge's uvicorn settings.
"""

from __future__ import annotations

import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from core.ids import new_click_id

LANDING_URL = "https://example.com/landing"
_HEADERS = {"cache-control": "no-store"}


async def click(request: Request) -> RedirectResponse:
    # The query string is passed through as received: a floor, not a parser benchmark.
    click_id = new_click_id(time.time_ns() // 1_000_000)
    query = request.scope["query_string"].decode("latin-1")
    return RedirectResponse(f"{LANDING_URL}?click_id={click_id}&{query}", status_code=302, headers=_HEADERS)


def create_app() -> Starlette:
    return Starlette(routes=[Route("/c/{token}", click)])
