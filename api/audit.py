"""The one way a handler changes tenant data: a tenant transaction that writes its audit row.

    async with audited(request, "offer", offer_id) as (conn, audit):
        audit.before = await queries.get_offer(conn, org_id, offer_id)
        offer = await update_offer(conn, org_id, offer_id, changes)
        audit.after = offer

The audit row is inserted when the block ends, in the same transaction as the change,
so the two commit together or not at all: an exception in the block (every 4xx is
one) rolls the change back and writes no row, and a failed audit insert undoes the
change. The handler says what changed (target, ``before``, ``after``: records the
domain returns; secrets are dropped by ``core.audit.snapshot``); the rest comes from
the request:

- who: the principal (an API key's id or a user's ``sub``) and its organization;
- action: the route's handler as ``<resource>.<verb>`` (``audit_action``), e.g.
  ``offers.update``, ``api_keys.rotate``; ``api.app`` puts the route's endpoint in
  ``request.state.endpoint``;
- correlation id, client address (the peer, or the first X-Forwarded-For entry when
  ``settings.trust_forwarded_for``), user agent (bounded).

Every mutating route (POST, PUT, PATCH, DELETE) goes through here;
tests/api/test_audit.py walks the route table to hold that.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any, AsyncIterator, Callable

import asyncpg
import msgspec
from starlette.requests import Request

from api.auth import principal
from api.resources import resources, tenant_transaction
from core.audit import AuditEvent, bounded_user_agent, snapshot
from core.geo import client_ip
from core.store.audit import record_audit


class AuditDraft(msgspec.Struct, kw_only=True):
    """What the handler tells the audit row: the target and its state before and after."""

    target_type: str
    target_id: uuid.UUID | str | None = None
    before: Any = None
    after: Any = None


def audit_action(handler: Callable[..., Any]) -> str:
    """``api.handlers.offers.update`` -> ``offers.update``."""
    return f"{handler.__module__.rsplit('.', 1)[-1]}.{handler.__name__.rstrip('_')}"


def request_client_ip(request: Request) -> str | None:
    forwarded_for = request.headers.get("x-forwarded-for")
    return client_ip(
        request.client.host if request.client else None,
        forwarded_for.encode("latin-1") if forwarded_for is not None else None,
        resources(request).settings.trust_forwarded_for,
    )


def audit_event(request: Request, draft: AuditDraft) -> AuditEvent:
    who = principal(request)
    return AuditEvent(
        org_id=who.org_id, actor_type=who.actor_type, actor_id=who.actor_id,
        action=audit_action(request.state.endpoint.handler),
        target_type=draft.target_type,
        target_id=None if draft.target_id is None else str(draft.target_id),
        before=snapshot(draft.before), after=snapshot(draft.after),
        correlation_id=request.state.correlation_id, client_ip=request_client_ip(request),
        user_agent=bounded_user_agent(request.headers.get("user-agent")),
    )


@contextlib.asynccontextmanager
async def audited(
    request: Request, target_type: str, target_id: uuid.UUID | str | None = None,
) -> AsyncIterator[tuple[asyncpg.Connection, AuditDraft]]:
    """The principal's tenant transaction, and the draft of the audit row it commits with."""
    draft = AuditDraft(target_type=target_type, target_id=target_id)
    async with tenant_transaction(request, principal(request).org_id) as conn:
        yield conn, draft
        await record_audit(conn, audit_event(request, draft))
