from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import queries
from api.audit import audited
from api.auth import principal
from api.bodies import read_json, read_query
from api.resources import publish_affected, resources, tenant_transaction
from api.responses import json_response
from api.schemas import LinkCreate, LinkQuery
from core.store.links import create_link


async def create(request: Request) -> Response:
    body = await read_json(request, LinkCreate)
    async with audited(request, "link") as (conn, audit):
        link = await create_link(conn, principal(request).org_id, body.offer_id, body.affiliate_id)
        audit.target_id, audit.after = link.id, link
    await publish_affected(request, link.org_id, token=link.token)
    return json_response(queries.link_out(link, resources(request).settings.public_edge_url), 201)


async def list_(request: Request) -> Response:
    query = read_query(request, LinkQuery)
    edge_url = resources(request).settings.public_edge_url
    async with tenant_transaction(request, principal(request).org_id) as conn:
        return json_response(await queries.list_links(conn, principal(request).org_id, query, edge_url, principal(request).scope))
