"""/v1/advertisers/{advertiser_id}/signing-secrets: create (rotate), list, revoke.

A new secret is in the response once, with ``Cache-Control: no-store``; lists and
audit rows show its last four characters only. Rotation and its 24-hour grace are
``core.store.postback_secrets``'; every change is published to the edges after commit.
"""

from __future__ import annotations

import datetime as dt

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api.audit import audited
from api.auth import principal
from api.bodies import path_id, read_json
from api.postback_auth import publish_advertiser_auth
from api.resources import tenant_transaction
from api.responses import json_response
from api.schemas import SigningSecretCreate, SigningSecretCreated, SigningSecretList
from core.store import postback_secrets


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def create(request: Request) -> Response:
    advertiser_id = path_id(request, "advertiser_id", "advertiser")
    body = await read_json(request, SigningSecretCreate)
    org_id = principal(request).org_id
    async with audited(request, "signing_secret") as (conn, audit):
        created = await postback_secrets.create_signing_secret(
            conn, org_id, advertiser_id, _now(), dt.timedelta(seconds=body.grace_period_s))
        audit.target_id, audit.after = created.record.id, created.record  # never the secret
    await publish_advertiser_auth(request, org_id, advertiser_id)
    response = json_response(SigningSecretCreated(**msgspec.structs.asdict(created.record), secret=created.secret), 201)
    response.headers["cache-control"] = "no-store"
    return response


async def list_(request: Request) -> Response:
    advertiser_id = path_id(request, "advertiser_id", "advertiser")
    org_id = principal(request).org_id
    async with tenant_transaction(request, org_id) as conn:
        found = await postback_secrets.list_signing_secrets(conn, org_id, advertiser_id, _now())
    return json_response(SigningSecretList(data=found))


async def revoke(request: Request) -> Response:
    advertiser_id = path_id(request, "advertiser_id", "advertiser")
    secret_id = path_id(request, "secret_id", "signing secret")
    org_id = principal(request).org_id
    async with audited(request, "signing_secret", secret_id) as (conn, audit):
        audit.before = await postback_secrets.get_signing_secret(conn, org_id, advertiser_id, secret_id)
        audit.after = revoked = await postback_secrets.revoke_signing_secret(conn, org_id, advertiser_id, secret_id, _now())
    await publish_advertiser_auth(request, org_id, advertiser_id)
    return json_response(revoked)
