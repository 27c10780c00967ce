from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from api import queries
from api.audit import audited
from api.auth import principal
from api.bodies import path_id, read_json, read_query
from api.resources import publish_affected, tenant_transaction
from api.responses import json_response
from api.schemas import ApprovalPut, OfferCreate, OfferPatch, OfferQuery, given_fields
from core.store.audit import lock_target
from core.store.offers import create_offer, set_offer_approval, update_offer


async def create(request: Request) -> Response:
    body = await read_json(request, OfferCreate)
    async with audited(request, "offer") as (conn, audit):
        offer = await create_offer(conn, principal(request).org_id, **given_fields(body))
        audit.target_id, audit.after = offer.id, offer
    return json_response(offer, 201)


async def list_(request: Request) -> Response:
    query = read_query(request, OfferQuery)
    async with tenant_transaction(request, principal(request).org_id) as conn:
        return json_response(await queries.list_offers(conn, principal(request).org_id, query, principal(request).scope))


async def get(request: Request) -> Response:
    offer_id = path_id(request, "offer_id", "offer")
    async with tenant_transaction(request, principal(request).org_id) as conn:
        return json_response(await queries.get_offer_view(conn, principal(request).org_id, offer_id, principal(request).scope))


async def update(request: Request) -> Response:
    offer_id = path_id(request, "offer_id", "offer")
    body = await read_json(request, OfferPatch)
    org_id = principal(request).org_id
    async with audited(request, "offer", offer_id) as (conn, audit):
        await lock_target(conn, "offers", org_id, offer_id)
        audit.before = await queries.get_offer(conn, org_id, offer_id)
        offer = audit.after = await update_offer(conn, org_id, offer_id, given_fields(body))
    await publish_affected(request, offer.org_id, offer_id=offer.id)
    return json_response(offer)


async def set_approval(request: Request) -> Response:
    offer_id = path_id(request, "offer_id", "offer")
    affiliate_id = path_id(request, "affiliate_id", "affiliate")
    body = await read_json(request, ApprovalPut)
    org_id = principal(request).org_id
    async with audited(request, "offer_approval", f"{offer_id}/{affiliate_id}") as (conn, audit):
        await lock_target(conn, "offer_affiliates", org_id, offer_id, affiliate_id)
        audit.before = await queries.find_offer_approval(conn, org_id, offer_id, affiliate_id)
        approval = audit.after = await set_offer_approval(
            conn, org_id, offer_id, affiliate_id, body.status,
            payout_minor=body.payout_minor, destination_url=body.destination_url,
        )
    await publish_affected(request, approval.org_id, offer_id=offer_id, affiliate_id=affiliate_id)
    return json_response(approval)
