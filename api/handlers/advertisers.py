from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api import queries
from api.audit import audited
from api.auth import principal
from api.bodies import path_id, read_json, read_query
from api.postback_auth import publish_advertiser_auth
from api.resources import resources, tenant_transaction
from api.responses import json_response
from api.schemas import AdvertiserCreate, AdvertiserOut, AdvertiserOutPage, PageQuery, PostbackTokenIssue, PostbackTokenIssued
from core.postback_urls import postback_url
from core.store.advertisers import Advertiser, create_advertiser
from core.store.audit import lock_target
from core.store import postback_secrets


def _out(request: Request, advertiser: Advertiser) -> AdvertiserOut:
    template = postback_url(resources(request).settings.public_edge_url)
    return AdvertiserOut(**msgspec.structs.asdict(advertiser), postback_url_template=template)


async def create(request: Request) -> Response:
    body = await read_json(request, AdvertiserCreate)
    async with audited(request, "advertiser") as (conn, audit):
        advertiser = await create_advertiser(conn, principal(request).org_id, body.name, status=body.status)
        audit.target_id, audit.after = advertiser.id, advertiser
    await publish_advertiser_auth(request, advertiser.org_id, advertiser.id, required=False)
    return json_response(_out(request, advertiser), 201)


async def list_(request: Request) -> Response:
    query = read_query(request, PageQuery)
    async with tenant_transaction(request, principal(request).org_id) as conn:
        page = await queries.list_advertisers(conn, principal(request).org_id, query)
    return json_response(AdvertiserOutPage(data=[_out(request, a) for a in page.data], next_cursor=page.next_cursor))


async def get(request: Request) -> Response:
    advertiser_id = path_id(request, "advertiser_id", "advertiser")
    async with tenant_transaction(request, principal(request).org_id) as conn:
        return json_response(_out(request, await queries.get_advertiser(conn, principal(request).org_id, advertiser_id)))


async def issue_postback_token(request: Request) -> Response:
    """Create or replace the advertiser's postback token; the token is in this response only."""
    advertiser_id = path_id(request, "advertiser_id", "advertiser")
    await read_json(request, PostbackTokenIssue)
    org_id = principal(request).org_id
    async with audited(request, "advertiser", advertiser_id) as (conn, audit):
        await lock_target(conn, "advertisers", org_id, advertiser_id)
        audit.before = await queries.get_advertiser(conn, org_id, advertiser_id)
        issued = await postback_secrets.issue_postback_token(conn, org_id, advertiser_id)
        audit.after = await queries.get_advertiser(conn, org_id, advertiser_id)  # its last4, never the token
    gone = ["tok:" + issued.previous_hash.hex()] if issued.previous_hash else []
    await publish_advertiser_auth(request, org_id, advertiser_id, gone=gone)
    response = json_response(PostbackTokenIssued(
        advertiser_id=advertiser_id, postback_token=issued.token, postback_token_last4=issued.last4,
        postback_url=postback_url(resources(request).settings.public_edge_url, issued.token),
    ))
    response.headers["cache-control"] = "no-store"
    return response
