"""/v1/webhooks: the organization's webhooks and its affiliates' (an affiliate key: its own only).

A webhook is made with its first signing secret, which is in the creation's response
only (``Cache-Control: no-store``); audit rows and later answers never hold it. Its URL
passes the SSRF guard, with a fresh lookup, before anything is written
(``core.endpoint_checks``). Disabling holds its pending deliveries, enabling releases
them (``core.store.delivery_endpoints``); deleting it deletes its deliveries too.
"""

from __future__ import annotations

import datetime as dt

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api import delivery_queries
from api.audit import audited
from api.auth import principal
from api.bodies import path_id, read_json, read_query
from api.delivery_schemas import WebhookCreate, WebhookCreated, WebhookPatch
from api.resources import resources, tenant_transaction
from api.responses import json_response
from api.schemas import PageQuery, given_fields
from core.endpoint_checks import checked_changes, new_endpoint
from core.store import delivery_endpoints
from core.store.delivery_endpoints import WEBHOOK


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def create(request: Request) -> Response:
    body = await read_json(request, WebhookCreate)
    who, res = principal(request), resources(request)
    new = await new_endpoint(WEBHOOK, who.scope, res.outbound, res.resolver, url=body.url, event_types=body.event_types,
                             affiliate_id=body.affiliate_id, description=body.description)
    async with audited(request, "webhook") as (conn, audit):
        created = await delivery_endpoints.create_webhook(conn, who.org_id, new, _now())
        audit.target_id, audit.after = created.endpoint.id, created.endpoint  # never the secret
    response = json_response(WebhookCreated(**msgspec.structs.asdict(created.endpoint), secret=created.secret), 201)
    response.headers["cache-control"] = "no-store"
    return response


async def list_(request: Request) -> Response:
    query = read_query(request, PageQuery)
    who = principal(request)
    async with tenant_transaction(request, who.org_id) as conn:
        return json_response(await delivery_queries.list_endpoints(conn, who.org_id, WEBHOOK, query, who.scope))


async def get(request: Request) -> Response:
    endpoint_id = path_id(request, "webhook_id", "webhook")
    who = principal(request)
    async with tenant_transaction(request, who.org_id) as conn:
        return json_response(await delivery_queries.get_endpoint(conn, who.org_id, WEBHOOK, endpoint_id, who.scope))


async def update(request: Request) -> Response:
    endpoint_id = path_id(request, "webhook_id", "webhook")
    body = await read_json(request, WebhookPatch)
    who, res = principal(request), resources(request)
    changes = await checked_changes(WEBHOOK, given_fields(body), res.outbound, res.resolver)
    async with audited(request, "webhook", endpoint_id) as (conn, audit):
        audit.before = await delivery_endpoints.lock_endpoint(conn, who.org_id, WEBHOOK, endpoint_id, who.scope.affiliate_id)
        audit.after = endpoint = await delivery_endpoints.update_endpoint(
            conn, who.org_id, WEBHOOK, endpoint_id, changes, _now(), who.scope.affiliate_id)
    return json_response(endpoint)


async def delete(request: Request) -> Response:
    endpoint_id = path_id(request, "webhook_id", "webhook")
    who = principal(request)
    async with audited(request, "webhook", endpoint_id) as (conn, audit):
        audit.before = await delivery_endpoints.delete_endpoint(conn, who.org_id, WEBHOOK, endpoint_id, who.scope.affiliate_id)
    return Response(status_code=204)
