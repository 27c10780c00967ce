from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response

from api import queries
from api.auth import principal
from api.resources import tenant_transaction
from api.responses import json_response


async def get(request: Request) -> Response:
    org_id = principal(request).org_id
    async with tenant_transaction(request, org_id) as conn:
        report = await queries.usage_report(conn, org_id, dt.datetime.now(dt.timezone.utc))
    return json_response(report)
