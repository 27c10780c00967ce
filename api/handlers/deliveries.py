"""/v1/deliveries: what was sent to webhooks and affiliate postbacks, each attempt, and replays.

An affiliate key sees its own endpoints' deliveries only (``api.delivery_queries``).
A replay makes a delivered or dead delivery pending again with a fresh retry budget
(``settings.delivery_max_age_s``) and wakes the sender on commit
(``core.store.delivery_replays``); a pending one, or one whose endpoint is disabled,
is refused with 409.
"""

from __future__ import annotations

import datetime as dt

from starlette.requests import Request
from starlette.responses import Response

from api import delivery_queries
from api.audit import audited
from api.auth import principal
from api.bodies import path_id, read_json, read_query
from api.delivery_schemas import DeadDeliveriesReplay, DeliveryQuery, DeliveryReplay, ReplayedDeliveries
from api.resources import resources, tenant_transaction
from api.responses import json_response
from core.store import delivery_replays


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _max_age(request: Request) -> dt.timedelta:
    return dt.timedelta(seconds=resources(request).settings.delivery_max_age_s)


async def list_(request: Request) -> Response:
    query = read_query(request, DeliveryQuery)
    who = principal(request)
    async with tenant_transaction(request, who.org_id) as conn:
        return json_response(await delivery_queries.list_deliveries(conn, who.org_id, query, who.scope))


async def get(request: Request) -> Response:
    delivery_id = path_id(request, "delivery_id", "delivery")
    who = principal(request)
    async with tenant_transaction(request, who.org_id) as conn:
        return json_response(await delivery_queries.get_delivery_detail(conn, who.org_id, delivery_id, who.scope))


async def replay(request: Request) -> Response:
    delivery_id = path_id(request, "delivery_id", "delivery")
    await read_json(request, DeliveryReplay)
    who = principal(request)
    async with audited(request, "delivery", delivery_id) as (conn, audit):
        audit.before = await delivery_queries.get_delivery(conn, who.org_id, delivery_id, who.scope, lock=True)
        await delivery_replays.replay_delivery(
            conn, who.org_id, delivery_id, _now(), _max_age(request), who.scope.affiliate_id)
        audit.after = replayed = await delivery_queries.get_delivery(conn, who.org_id, delivery_id, who.scope)
    return json_response(replayed)


async def replay_dead(request: Request) -> Response:
    body = await read_json(request, DeadDeliveriesReplay)
    who = principal(request)
    async with audited(request, "delivery_endpoint", body.endpoint_id) as (conn, audit):
        count = await delivery_replays.replay_dead(
            conn, who.org_id, body.endpoint_id, _now(), _max_age(request), who.scope.affiliate_id)
        audit.after = replayed = ReplayedDeliveries(replayed=count)
    return json_response(replayed)
