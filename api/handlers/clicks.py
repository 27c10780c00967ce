"""/v1/clicks: the clicks list, scoped and shaped by role (api.click_queries)."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response

from api import click_queries
from api.auth import principal
from api.bodies import read_query
from api.resources import tenant_transaction
from api.responses import json_response
from api.schemas import ClickQuery


async def list_(request: Request) -> Response:
    query = read_query(request, ClickQuery)
    who = principal(request)
    now = dt.datetime.now(dt.timezone.utc)
    async with tenant_transaction(request, who.org_id) as conn:
        return json_response(await click_queries.list_clicks(conn, who.org_id, query, who.scope, now))
