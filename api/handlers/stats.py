"""GET /v1/stats: counts and money from the rollups, grouped and filtered, in any time zone
(the query is planned by ``core.stats``; the read is ``api.stats_queries``). An offer,
advertiser or affiliate id in a filter that the organization does not hold (another
organization's included) is a 422, not an empty answer."""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response

from api.auth import principal
from api.bodies import read_query
from api.resources import tenant_transaction
from api.responses import json_response
from api.stats_queries import check_filter_ids, query_stats
from core.stats import StatsRequest, plan_stats


async def get(request: Request) -> Response:
    query = read_query(request, StatsRequest)
    who = principal(request)
    plan = plan_stats(query, who.scope, dt.datetime.now(dt.timezone.utc))
    async with tenant_transaction(request, who.org_id) as conn:
        await check_filter_ids(conn, who.org_id, plan)
        return json_response(await query_stats(conn, who.org_id, plan))
