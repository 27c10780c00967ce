"""/v1/admin/api-keys: create, list, get, rotate, revoke.

A new key (created or rotated) is in the response once, with ``Cache-Control: no-store``;
afterwards only its prefix and last four characters are shown. Who may manage which
role is decided in ``core.permissions`` (``authorize_grant``). Keys that may send
conversions are published to the edges after every change (``api.postback_auth``): a
revocation must reach them (503 if it cannot yet); a new key's publish failing is
logged and repaired by the next sync, since its secret is in this response only.
"""

from __future__ import annotations

import datetime as dt

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api import queries
from api.audit import audited
from api.auth import principal
from api.bodies import path_id, read_json, read_query
from api.postback_auth import publish_key_auth
from api.resources import tenant_transaction
from api.responses import json_response
from api.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRevoke, ApiKeyRotate, PageQuery
from core.store.api_keys import CreatedApiKey, create_api_key, revoke_api_key, rotate_api_key
from core.store.audit import lock_target


def _shown_once(created: CreatedApiKey) -> Response:
    response = json_response(ApiKeyCreated(**msgspec.structs.asdict(created.record), key=created.key), 201)
    response.headers["cache-control"] = "no-store"
    return response


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def create(request: Request) -> Response:
    body = await read_json(request, ApiKeyCreate)
    who = principal(request)
    async with audited(request, "api_key") as (conn, audit):
        created = await create_api_key(
            conn, who.org_id, body.name, body.role, test=body.test, expires_at=body.expires_at,
            advertiser_id=body.advertiser_id, affiliate_id=body.affiliate_id, granted_by=who,
        )
        audit.target_id, audit.after = created.record.id, created.record  # the record: never the key
    await publish_key_auth(request, who.org_id, [created.record.id], required=False)
    return _shown_once(created)


async def list_(request: Request) -> Response:
    query = read_query(request, PageQuery)
    org_id = principal(request).org_id
    async with tenant_transaction(request, org_id) as conn:
        return json_response(await queries.list_api_keys(conn, org_id, query))


async def get(request: Request) -> Response:
    key_id = path_id(request, "key_id", "API key")
    org_id = principal(request).org_id
    async with tenant_transaction(request, org_id) as conn:
        return json_response(await queries.get_api_key(conn, org_id, key_id))


async def rotate(request: Request) -> Response:
    key_id = path_id(request, "key_id", "API key")
    body = await read_json(request, ApiKeyRotate)
    who = principal(request)
    async with audited(request, "api_key", key_id) as (conn, audit):
        await lock_target(conn, "api_keys", who.org_id, key_id)
        audit.before = {"rotated": await queries.get_api_key(conn, who.org_id, key_id)}
        created = await rotate_api_key(
            conn, who.org_id, key_id, _now(), dt.timedelta(seconds=body.grace_period_s), granted_by=who,
        )
        # The old key now points at its replacement (replaced_by, grace_until); the new one's record, never the key.
        audit.after = {"rotated": await queries.get_api_key(conn, who.org_id, key_id), "replacement": created.record}
    await publish_key_auth(request, who.org_id, [key_id, created.record.id], required=False)
    return _shown_once(created)


async def revoke(request: Request) -> Response:
    key_id = path_id(request, "key_id", "API key")
    body = await read_json(request, ApiKeyRevoke)
    who = principal(request)
    async with audited(request, "api_key", key_id) as (conn, audit):
        await lock_target(conn, "api_keys", who.org_id, key_id)
        audit.before = await queries.get_api_key(conn, who.org_id, key_id)
        revoked = audit.after = await revoke_api_key(conn, who.org_id, key_id, _now(), body.reason, granted_by=who)
    await publish_key_auth(request, who.org_id, [key_id])
    return json_response(revoked)
