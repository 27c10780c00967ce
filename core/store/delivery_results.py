"""Writing down what the sender's requests did, in one transaction per batch.

``record_attempts`` stores every attempt, moves each delivery to its verdict
(delivered, pending again at ``next_attempt_at``, or dead), and updates the endpoints'
failure streaks. It returns the endpoints' streaks so the caller can decide which to
disable (``core.delivery_policy.should_disable``); ``disable_endpoints`` then holds
their pending deliveries and tells the owner with an ``endpoint.disabled`` event.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Sequence

import asyncpg
import msgspec

from core.store.deliveries import HELD, OUTBOX_CHANNEL, AttemptResult, notify

EXCERPT_MAX_CHARS = 1000


class EndpointStreak(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    org_id: uuid.UUID
    affiliate_id: uuid.UUID | None
    kind: str
    url: str
    failure_streak: int
    failing_since: dt.datetime | None


async def record_attempts(conn: asyncpg.Connection, results: Sequence[AttemptResult]) -> list[EndpointStreak]:
    if not results:
        return []
    # A delivery deleted meanwhile (its endpoint was deleted) has nothing left to record.
    await conn.execute(
        "insert into delivery_attempts (org_id, delivery_id, attempt, started_at, latency_ms, status_code, error,"
        " response_excerpt, url)"
        " select u.* from unnest($1::uuid[], $2::uuid[], $3::int[], $4::timestamptz[], $5::int[], $6::int[],"
        " $7::text[], $8::text[], $9::text[]) as u (org_id, delivery_id, attempt, started_at, latency_ms,"
        " status_code, error, response_excerpt, url)"
        " where exists (select from deliveries d where d.id = u.delivery_id)",
        [r.delivery.org_id for r in results], [r.delivery.id for r in results],
        [r.delivery.attempt for r in results], [r.started_at for r in results], [r.latency_ms for r in results],
        [r.status_code for r in results], [r.error for r in results], [_clean(r.excerpt) for r in results],
        [r.url for r in results])
    await conn.execute(
        "update deliveries d set status = u.verdict_status, attempts = u.attempt, last_attempt_at = u.started_at,"
        " last_status_code = u.status_code, last_error = u.error,"
        " next_attempt_at = coalesce(u.next_attempt_at, d.next_attempt_at),"
        " delivered_at = case when u.verdict_status = 'delivered' then u.finished_at else d.delivered_at end,"
        " dead_at = case when u.verdict_status = 'dead' then u.finished_at else null end"
        " from unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::int[], $6::text[],"
        " $7::timestamptz[], $8::timestamptz[])"
        " as u (id, verdict_status, attempt, started_at, status_code, error, next_attempt_at, finished_at)"
        " where d.id = u.id",
        [r.delivery.id for r in results], [_status(r.verdict) for r in results],
        [r.delivery.attempt for r in results], [r.started_at for r in results],
        [r.status_code for r in results], [r.error for r in results],
        [r.next_attempt_at for r in results], [r.finished_at for r in results])
    return await _update_streaks(conn, results)


def _status(verdict: str) -> str:
    return "pending" if verdict == "retry" else verdict


def _clean(excerpt: str) -> str:
    return excerpt.replace("\x00", "")[:EXCERPT_MAX_CHARS]


async def _update_streaks(conn: asyncpg.Connection, results: Sequence[AttemptResult]) -> list[EndpointStreak]:
    """Per endpoint: reset on a success, else add the failures after its last success."""
    per_endpoint: dict[uuid.UUID, list] = {}
    for r in sorted(results, key=lambda r: r.finished_at):
        entry = per_endpoint.setdefault(r.delivery.endpoint_id, [None, 0, None])  # last success, trailing, since
        if r.verdict == "delivered":
            entry[0], entry[1], entry[2] = r.finished_at, 0, None
        else:
            entry[1] += 1
            entry[2] = entry[2] or r.started_at
    ids = list(per_endpoint)
    rows = await conn.fetch(
        "update delivery_endpoints e set"
        " failure_streak = case when u.success_at is null then e.failure_streak + u.trailing_n else u.trailing_n end,"
        " failing_since = case when u.trailing_n = 0 then null"
        "   when u.success_at is null then coalesce(e.failing_since, u.since) else u.since end,"
        " last_success_at = coalesce(u.success_at, e.last_success_at)"
        " from unnest($1::uuid[], $2::timestamptz[], $3::int[], $4::timestamptz[]) as u (id, success_at, trailing_n, since)"
        " where e.id = u.id"
        " returning e.id, e.org_id, e.affiliate_id, e.kind, e.url, e.failure_streak, e.failing_since",
        ids, [per_endpoint[i][0] for i in ids], [per_endpoint[i][1] for i in ids], [per_endpoint[i][2] for i in ids])
    return [EndpointStreak(**dict(r)) for r in rows]


async def disable_endpoints(conn: asyncpg.Connection, endpoints: Sequence[tuple[EndpointStreak, str]],
                            now: dt.datetime) -> list[uuid.UUID]:
    """Disable the still-active ones among ``endpoints`` (with a reason each); hold their
    pending deliveries; write an ``endpoint.disabled`` event for each. Returns their ids."""
    if not endpoints:
        return []
    reasons = {e.id: reason for e, reason in endpoints}
    rows = await conn.fetch(
        "update delivery_endpoints e set status = 'disabled', disabled_reason = u.reason, disabled_at = $3,"
        " updated_at = $3 from unnest($1::uuid[], $2::text[]) as u (id, reason)"
        " where e.id = u.id and e.status = 'active' returning e.id",
        list(reasons), list(reasons.values()), now)
    disabled = {r["id"] for r in rows}
    if not disabled:
        return []
    await conn.execute(
        "update deliveries set next_attempt_at = $2 where endpoint_id = any($1::uuid[]) and status = 'pending'",
        list(disabled), HELD)
    await conn.executemany(
        "insert into outbox_events (org_id, event_type, affiliate_id, payload) values ($1, 'endpoint.disabled', $2, $3)",
        [(e.org_id, e.affiliate_id, {
            "endpoint_id": str(e.id), "kind": e.kind, "url": e.url, "reason": reasons[e.id],
            "failure_streak": e.failure_streak,
            "failing_since": e.failing_since.isoformat() if e.failing_since else None, "disabled_at": now.isoformat(),
        }) for e, _ in endpoints if e.id in disabled])
    await notify(conn, OUTBOX_CHANNEL)
    return sorted(disabled)
