from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import queries
from api.audit import audited
from api.auth import principal
from api.bodies import path_id, read_json, read_query
from api.resources import publish_affected, tenant_transaction
from api.responses import json_response
from api.schemas import AffiliateCreate, AffiliatePatch, PageQuery, given_fields
from core.store.affiliates import create_affiliate, update_affiliate
from core.store.audit import lock_target


async def create(request: Request) -> Response:
    body = await read_json(request, AffiliateCreate)
    async with audited(request, "affiliate") as (conn, audit):
        affiliate = await create_affiliate(
            conn, principal(request).org_id, body.name, email=body.email, status=body.status
        )
        audit.target_id, audit.after = affiliate.id, affiliate
    return json_response(affiliate, 201)


async def list_(request: Request) -> Response:
    query = read_query(request, PageQuery)
    async with tenant_transaction(request, principal(request).org_id) as conn:
        return json_response(await queries.list_affiliates(conn, principal(request).org_id, query))


async def get(request: Request) -> Response:
    affiliate_id = path_id(request, "affiliate_id", "affiliate")
    async with tenant_transaction(request, principal(request).org_id) as conn:
        return json_response(await queries.get_affiliate(conn, principal(request).org_id, affiliate_id))


async def update(request: Request) -> Response:
    affiliate_id = path_id(request, "affiliate_id", "affiliate")
    body = await read_json(request, AffiliatePatch)
    org_id = principal(request).org_id
    async with audited(request, "affiliate", affiliate_id) as (conn, audit):
        await lock_target(conn, "affiliates", org_id, affiliate_id)
        audit.before = await queries.get_affiliate(conn, org_id, affiliate_id)
        affiliate = audit.after = await update_affiliate(conn, org_id, affiliate_id, given_fields(body))
    await publish_affected(request, affiliate.org_id, affiliate_id=affiliate.id)
    return json_response(affiliate)
