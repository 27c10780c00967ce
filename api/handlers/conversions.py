"""/v1/conversions: list and read (scoped and shaped by role), and change a status by hand.

A manual move goes through ``core.store.conversion_status.change_conversion_status``,
the same path as a later postback's: status and reason, a history row with the actor
(``api_key:<id>`` or ``user:<sub>``) and the earned-money deltas, caps counters and the
affiliate's outbox event, all in the transaction that writes the audit row. A move the
lifecycle does not allow is 409 ``invalid_transition``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import conversion_queries
from api.audit import audited
from api.auth import principal
from api.bodies import path_id, read_json, read_query
from api.resources import tenant_transaction
from api.responses import json_response
from api.schemas import ConversionQuery, ConversionStatusChange
from core.store.conversion_status import change_conversion_status


async def list_(request: Request) -> Response:
    query = read_query(request, ConversionQuery)
    who = principal(request)
    async with tenant_transaction(request, who.org_id) as conn:
        return json_response(await conversion_queries.list_conversions(conn, who.org_id, query, who.scope))


async def get(request: Request) -> Response:
    conversion_id = path_id(request, "conversion_id", "conversion")
    who = principal(request)
    async with tenant_transaction(request, who.org_id) as conn:
        return json_response(await conversion_queries.get_conversion(conn, who.org_id, conversion_id, who.scope))


async def change_status(request: Request) -> Response:
    conversion_id = path_id(request, "conversion_id", "conversion")
    body = await read_json(request, ConversionStatusChange)
    who = principal(request)
    async with audited(request, "conversion", conversion_id) as (conn, audit):
        audit.before = await conversion_queries.get_conversion(conn, who.org_id, conversion_id, who.scope, lock=True)
        await change_conversion_status(
            conn, org_id=who.org_id, conversion_id=conversion_id, to_status=body.status, reason=body.reason,
            actor=f"{who.actor_type}:{who.actor_id}", correlation_id=request.state.correlation_id,
        )
        changed = audit.after = await conversion_queries.get_conversion(conn, who.org_id, conversion_id, who.scope)
    return json_response(changed)
