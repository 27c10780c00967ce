"""/v1/audit-log: the organization's audit rows, newest first, filtered and keyset-paged."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import queries
from api.auth import principal
from api.bodies import read_query
from api.resources import tenant_transaction
from api.responses import json_response
from api.schemas import AuditLogQuery


async def list_(request: Request) -> Response:
    query = read_query(request, AuditLogQuery)
    org_id = principal(request).org_id
    async with tenant_transaction(request, org_id) as conn:
        return json_response(await queries.list_audit_log(conn, org_id, query))
