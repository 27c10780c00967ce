from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import queries
from api.audit import audited
from api.auth import principal
from api.bodies import path_id, read_json, read_query
from api.resources import tenant_transaction
from api.responses import json_response
from api.schemas import AdvertiserCreate, PageQuery
from core.store.advertisers import create_advertiser


async def create(request: Request) -> Response:
    body = await read_json(request, AdvertiserCreate)
    async with audited(request, "advertiser") as (conn, audit):
        advertiser = await create_advertiser(conn, principal(request).org_id, body.name, status=body.status)
        audit.target_id, audit.after = advertiser.id, advertiser
    return json_response(advertiser, 201)


async def list_(request: Request) -> Response:
    query = read_query(request, PageQuery)
    async with tenant_transaction(request, principal(request).org_id) as conn:
        return json_response(await queries.list_advertisers(conn, principal(request).org_id, query))


async def get(request: Request) -> Response:
    advertiser_id = path_id(request, "advertiser_id", "advertiser")
    async with tenant_transaction(request, principal(request).org_id) as conn:
        return json_response(await queries.get_advertiser(conn, principal(request).org_id, advertiser_id))
