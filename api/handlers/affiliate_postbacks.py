"""/v1/affiliate-postbacks: affiliates' postback URL templates (an affiliate key: its own only).

A template is requested with GET for its affiliate's conversion events, macros
expanded; one per event at most, the most specific (offer and goal) winning
(``core.delivery_routing``). Its offer must be one the caller can see (an affiliate
key: an offer open to it), and its URL passes the SSRF guard with the macros replaced
before anything is written (``core.endpoint_checks``). Status changes hold or release
its pending deliveries like a webhook's.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from api import delivery_queries, queries
from api.audit import audited
from api.auth import principal
from api.bodies import path_id, read_json, read_query
from api.delivery_schemas import AffiliatePostbackCreate, AffiliatePostbackPatch, AffiliatePostbackQuery
from api.resources import resources, tenant_transaction
from api.responses import json_response
from api.schemas import given_fields
from core.endpoint_checks import checked_changes, new_endpoint
from core.permissions import Principal
from core.store import delivery_endpoints
from core.store.delivery_endpoints import POSTBACK


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def _offer_visible(conn: asyncpg.Connection, who: Principal, offer_id: uuid.UUID | None) -> None:
    """An offer the caller cannot see (another organization's, or one not open to the
    affiliate key) is missing, exactly as ``GET /v1/offers/{id}`` answers."""
    if offer_id is not None:
        await queries.get_offer(conn, who.org_id, offer_id, who.scope)


async def create(request: Request) -> Response:
    body = await read_json(request, AffiliatePostbackCreate)
    who, res = principal(request), resources(request)
    new = await new_endpoint(POSTBACK, who.scope, res.outbound, res.resolver, url=body.url,
                             event_types=body.event_types, affiliate_id=body.affiliate_id, description=body.description,
                             offer_id=body.offer_id, goal=body.goal)
    async with audited(request, "affiliate_postback") as (conn, audit):
        await _offer_visible(conn, who, new.offer_id)
        endpoint = await delivery_endpoints.create_endpoint(conn, who.org_id, new)
        audit.target_id, audit.after = endpoint.id, endpoint
    return json_response(endpoint, 201)


async def list_(request: Request) -> Response:
    query = read_query(request, AffiliatePostbackQuery)
    who = principal(request)
    async with tenant_transaction(request, who.org_id) as conn:
        return json_response(await delivery_queries.list_endpoints(
            conn, who.org_id, POSTBACK, query, who.scope, affiliate_id=query.affiliate_id))


async def get(request: Request) -> Response:
    endpoint_id = path_id(request, "affiliate_postback_id", "affiliate postback")
    who = principal(request)
    async with tenant_transaction(request, who.org_id) as conn:
        return json_response(await delivery_queries.get_endpoint(conn, who.org_id, POSTBACK, endpoint_id, who.scope))


async def update(request: Request) -> Response:
    endpoint_id = path_id(request, "affiliate_postback_id", "affiliate postback")
    body = await read_json(request, AffiliatePostbackPatch)
    who, res = principal(request), resources(request)
    changes = await checked_changes(POSTBACK, given_fields(body), res.outbound, res.resolver)
    async with audited(request, "affiliate_postback", endpoint_id) as (conn, audit):
        audit.before = await delivery_endpoints.lock_endpoint(conn, who.org_id, POSTBACK, endpoint_id, who.scope.affiliate_id)
        await _offer_visible(conn, who, changes.get("offer_id"))
        audit.after = endpoint = await delivery_endpoints.update_endpoint(
            conn, who.org_id, POSTBACK, endpoint_id, changes, _now(), who.scope.affiliate_id)
    return json_response(endpoint)


async def delete(request: Request) -> Response:
    endpoint_id = path_id(request, "affiliate_postback_id", "affiliate postback")
    who = principal(request)
    async with audited(request, "affiliate_postback", endpoint_id) as (conn, audit):
        audit.before = await delivery_endpoints.delete_endpoint(
            conn, who.org_id, POSTBACK, endpoint_id, who.scope.affiliate_id)
    return Response(status_code=204)
