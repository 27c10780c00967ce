"""Outbound endpoints in Postgres: affiliate postback templates and webhooks.

Both kinds share ``delivery_endpoints`` (migration 0018) and are told apart by ``kind``:
a webhook's id is a missing postback and the reverse. Every function takes the caller's
affiliate scope; an id outside it (another affiliate's endpoint, the organization's own
webhook, another organization's) is ``NotFound`` exactly like a missing one.

A webhook is made with its first signing secret (``core.store.webhook_secrets``), in
the same transaction, so no webhook ever exists that the worker could not sign for.

Status: a disabled endpoint's pending deliveries are held (``next_attempt_at`` =
``HELD``, out of the sender's way); enabling it releases them at once and clears the
failure streak that disabled it, so the worker's automatic disabling starts afresh.
Either change wakes the sender (``NOTIFY`` on commit). Setting the status it already
has changes nothing.

URLs and event types are checked before they get here (``core.endpoint_checks``):
the SSRF guard resolves names, which is no work to do inside a transaction.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Mapping

import asyncpg
import msgspec

from core.errors import NotFound, ValidationError
from core.store.deliveries import DELIVERIES_CHANNEL, HELD, notify
from core.store.webhook_secrets import WEBHOOK_SECRET_GRACE, issue_webhook_secret

POSTBACK = "postback"
WEBHOOK = "webhook"
WHAT = {POSTBACK: "affiliate postback", WEBHOOK: "webhook"}
STATUSES = ("active", "disabled")


class DeliveryEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    """An endpoint as shown. ``status`` "disabled" with ``disabled_reason`` "failing" or
    "gone" (the receiver answered 410) is the worker's doing; "manual" the owner's."""

    id: uuid.UUID
    org_id: uuid.UUID
    kind: str  # postback | webhook
    affiliate_id: uuid.UUID | None  # None: the organization's own webhook
    offer_id: uuid.UUID | None  # postbacks: only this offer's conversions (None: any offer)
    goal: str | None  # postbacks: only this goal's conversions (None: any goal)
    url: str  # a postback's is a template with macros
    event_types: list[str]
    description: str
    status: str  # active | disabled
    disabled_reason: str | None  # failing | gone | manual
    disabled_at: dt.datetime | None
    failure_streak: int  # failed attempts since the last success
    failing_since: dt.datetime | None
    last_success_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


class NewEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    kind: str
    affiliate_id: uuid.UUID | None
    offer_id: uuid.UUID | None
    goal: str | None
    url: str
    event_types: list[str]
    description: str


class CreatedWebhook(msgspec.Struct, frozen=True, kw_only=True):
    endpoint: DeliveryEndpoint
    secret: str  # its first signing secret, shown once


COLUMNS = (
    "id, org_id, kind, affiliate_id, offer_id, goal, url, event_types, description, status, disabled_reason,"
    " disabled_at, failure_streak, failing_since, last_success_at, created_at, updated_at"
)
_CHANGEABLE = {WEBHOOK: {"url", "event_types", "description", "status"},
               POSTBACK: {"url", "event_types", "description", "status", "offer_id", "goal"}}


async def _require(conn: asyncpg.Connection, table: str, org_id: uuid.UUID, row_id: uuid.UUID | None, what: str) -> None:
    if row_id is not None and not await conn.fetchval(
            f"select exists(select from {table} where org_id = $1 and id = $2)", org_id, row_id):
        raise NotFound("not_found", f"{what} not found")


async def create_endpoint(conn: asyncpg.Connection, org_id: uuid.UUID, new: NewEndpoint) -> DeliveryEndpoint:
    """A new active endpoint; its affiliate and offer must be ``org_id``'s."""
    await _require(conn, "affiliates", org_id, new.affiliate_id, "affiliate")
    await _require(conn, "offers", org_id, new.offer_id, "offer")
    row = await conn.fetchrow(
        f"insert into delivery_endpoints (org_id, kind, affiliate_id, offer_id, goal, url, event_types, description)"
        f" values ($1, $2, $3, $4, $5, $6, $7, $8) returning {COLUMNS}",
        org_id, new.kind, new.affiliate_id, new.offer_id, new.goal, new.url, new.event_types, new.description)
    return DeliveryEndpoint(**dict(row))


async def create_webhook(conn: asyncpg.Connection, org_id: uuid.UUID, new: NewEndpoint, now: dt.datetime) -> CreatedWebhook:
    async with conn.transaction():
        endpoint = await create_endpoint(conn, org_id, new)
        issued = await issue_webhook_secret(conn, org_id, endpoint.id, now, WEBHOOK_SECRET_GRACE)
    return CreatedWebhook(endpoint=endpoint, secret=issued.secret)


async def lock_endpoint(
    conn: asyncpg.Connection, org_id: uuid.UUID, kind: str, endpoint_id: uuid.UUID, affiliate_id: uuid.UUID | None,
) -> DeliveryEndpoint:
    """The endpoint, locked until the transaction ends: changes of one endpoint serialize."""
    row = await conn.fetchrow(
        f"select {COLUMNS} from delivery_endpoints where org_id = $1 and kind = $2 and id = $3"
        f" and ($4::uuid is null or affiliate_id = $4) for update",
        org_id, kind, endpoint_id, affiliate_id)
    if row is None:
        raise NotFound("not_found", f"{WHAT[kind]} not found")
    return DeliveryEndpoint(**dict(row))


def _status_columns(status: str, now: dt.datetime) -> dict[str, Any]:
    if status == "disabled":
        return {"status": status, "disabled_reason": "manual", "disabled_at": now}
    return {"status": status, "disabled_reason": None, "disabled_at": None, "failure_streak": 0, "failing_since": None}


async def update_endpoint(
    conn: asyncpg.Connection, org_id: uuid.UUID, kind: str, endpoint_id: uuid.UUID, changes: Mapping[str, Any],
    now: dt.datetime, affiliate_id: uuid.UUID | None = None,
) -> DeliveryEndpoint:
    """Apply checked ``changes``; a status change holds or releases the pending deliveries."""
    if unknown := set(changes) - _CHANGEABLE[kind]:
        raise ValidationError("invalid_request", f"cannot change {', '.join(sorted(unknown))} of a {WHAT[kind]}")
    if changes.get("status", "active") not in STATUSES:
        raise ValidationError("invalid_status", f"status must be one of {', '.join(STATUSES)}")
    async with conn.transaction():
        current = await lock_endpoint(conn, org_id, kind, endpoint_id, affiliate_id)
        await _require(conn, "offers", org_id, changes.get("offer_id"), "offer")
        values = {k: v for k, v in changes.items() if k != "status"}
        status = changes.get("status", current.status)
        if status != current.status:
            values.update(_status_columns(status, now))
        if not values:
            return current
        values["updated_at"] = now
        assignments = ", ".join(f"{column} = ${n}" for n, column in enumerate(values, start=2))
        row = await conn.fetchrow(
            f"update delivery_endpoints set {assignments} where id = $1 returning {COLUMNS}",
            current.id, *values.values())
        if status != current.status:
            await conn.execute(
                "update deliveries set next_attempt_at = $3 where org_id = $1 and endpoint_id = $2 and status = 'pending'",
                org_id, current.id, HELD if status == "disabled" else now)
            await notify(conn, DELIVERIES_CHANNEL)
    return DeliveryEndpoint(**dict(row))


async def delete_endpoint(
    conn: asyncpg.Connection, org_id: uuid.UUID, kind: str, endpoint_id: uuid.UUID,
    affiliate_id: uuid.UUID | None = None,
) -> DeliveryEndpoint:
    """Delete the endpoint with its secrets, deliveries and their attempts; return what it was."""
    row = await conn.fetchrow(
        f"delete from delivery_endpoints where org_id = $1 and kind = $2 and id = $3"
        f" and ($4::uuid is null or affiliate_id = $4) returning {COLUMNS}",
        org_id, kind, endpoint_id, affiliate_id)
    if row is None:
        raise NotFound("not_found", f"{WHAT[kind]} not found")
    return DeliveryEndpoint(**dict(row))
