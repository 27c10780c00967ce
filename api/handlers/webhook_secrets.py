"""/v1/webhooks/{webhook_id}/secrets: rotate and list a webhook's signing secrets.

A new secret is in the rotation's response once, with ``Cache-Control: no-store``;
lists and audit rows show its last four characters only. The secrets current until the
rotation keep signing for ``grace_period_s`` (24 hours unless told), beside the new one
(``core.store.webhook_secrets``).
"""

from __future__ import annotations

import datetime as dt

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from api.audit import audited
from api.auth import principal
from api.bodies import path_id, read_json
from api.delivery_schemas import WebhookSecretCreated, WebhookSecretList, WebhookSecretRotate
from api.resources import tenant_transaction
from api.responses import json_response
from core.store import webhook_secrets


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def rotate(request: Request) -> Response:
    endpoint_id = path_id(request, "webhook_id", "webhook")
    body = await read_json(request, WebhookSecretRotate)
    who = principal(request)
    async with audited(request, "webhook_secret") as (conn, audit):
        created = await webhook_secrets.rotate_webhook_secret(
            conn, who.org_id, endpoint_id, _now(), dt.timedelta(seconds=body.grace_period_s), who.scope.affiliate_id)
        audit.target_id, audit.after = created.record.id, created.record  # never the secret
    response = json_response(WebhookSecretCreated(**msgspec.structs.asdict(created.record), secret=created.secret), 201)
    response.headers["cache-control"] = "no-store"
    return response


async def list_(request: Request) -> Response:
    endpoint_id = path_id(request, "webhook_id", "webhook")
    who = principal(request)
    async with tenant_transaction(request, who.org_id) as conn:
        found = await webhook_secrets.list_webhook_secrets(conn, who.org_id, endpoint_id, _now(), who.scope.affiliate_id)
    return json_response(WebhookSecretList(data=found))
