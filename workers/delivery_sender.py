"""The sender: makes the requests of due deliveries and writes down what happened.

Contract: a delivery is requested at least once per attempt it is claimed for and its
outcome is recorded after the request; if the process dies between the two, the lease
(``next_attempt_at`` moved past the request's timeouts) runs out and it is sent again.
Receivers dedupe on ``AffTok-Event-Id``. Each URL passes the SSRF guard again right
before its request, and the request goes to the addresses that guard checked.

``send_once`` claims one batch, sends it, records it: the burst mode tests use, with an
injected clock. ``run_forever`` keeps up to ``delivery_concurrency`` requests in flight,
claiming more as they finish, so one slow receiver never holds up the others, and
records finished attempts in batches. The operator's kill switch (``delivery_switch``)
is checked in the claim itself: while paused nothing is claimed, nothing is lost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import ssl
import time
from typing import Callable

import asyncpg
import msgspec

from core.delivery_policy import RetryPolicy, decide, should_disable
from core.delivery_requests import postback_headers, postback_url, webhook_headers
from core.outbound_targets import OutboundPolicy, Resolver, UnsafeTarget, resolve_target, system_resolver
from core.settings import Settings
from core.store.deliveries import AttemptResult, DueDelivery, claim_due, due_count, is_paused
from core.store.delivery_results import EndpointStreak, disable_endpoints, record_attempts
from workers import delivery_metrics as m
from workers.delivery_wakeups import wait_for_wake
from workers.outbound_http import SendFailed, send
from workers.queue_depth import record_queue_depth

log = logging.getLogger(__name__)
_values_decoder = msgspec.json.Decoder(dict[str, str | None])
_RECORD_RETRIES = 5
_FLUSH_S = 0.05
_EXCERPT_BYTES = 512


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def retry_policy(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        base_s=settings.delivery_retry_base_s, max_s=settings.delivery_retry_max_s,
        disable_after_failures=settings.delivery_disable_after_failures,
        disable_after_s=settings.delivery_disable_after_s)


def outbound_policy(settings: Settings) -> OutboundPolicy:
    return OutboundPolicy.from_text(settings.delivery_allowed_ports, settings.delivery_allow_cidrs)


class DeliverySender:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, *, clock: Callable[[], dt.datetime] = utc_now,
                 resolver: Resolver = system_resolver, rng: random.Random | None = None,
                 ssl_context: ssl.SSLContext | None = None, outbound: OutboundPolicy | None = None):
        self.settings = settings
        self.pool = pool
        self.clock = clock
        self.resolver = resolver
        self.rng = rng or random.Random()
        self.ssl_context = ssl_context
        self.outbound = outbound or outbound_policy(settings)
        self.retry = retry_policy(settings)
        connect_s, read_s = settings.delivery_connect_timeout_ms / 1000, settings.delivery_read_timeout_ms / 1000
        self.timeouts = (connect_s, read_s)
        self.lease = dt.timedelta(seconds=max(60.0, 2 * (connect_s + read_s) + 30))

    async def send_once(self, limit: int | None = None) -> int:
        """Claim up to ``limit`` due deliveries, send them all, record; return how many."""
        due = await self._claim(limit or self.settings.delivery_batch_max)
        if due:
            await self._record(await asyncio.gather(*(self._attempt(d) for d in due)))
        return len(due)

    async def _claim(self, limit: int) -> list[DueDelivery]:
        now = self.clock()
        async with self.pool.acquire() as conn:
            return await claim_due(conn, now, limit, now + self.lease)

    async def _attempt(self, d: DueDelivery) -> AttemptResult:
        started, t0 = self.clock(), time.perf_counter()
        url, status, error, excerpt, retry_after = d.url, None, None, "", None
        try:
            url, method, body, headers = self._request(d, int(started.timestamp()))
            target = await resolve_target(url, self.outbound, self.resolver)
            reply = await send(target, method, body, headers, connect_timeout_s=self.timeouts[0],
                               read_timeout_s=self.timeouts[1], excerpt_bytes=_EXCERPT_BYTES,
                               ssl_context=self.ssl_context)
            status, excerpt, retry_after = reply.status, reply.excerpt, reply.retry_after_s
        except UnsafeTarget as exc:
            error, excerpt = "unsafe_url", exc.message
        except SendFailed as exc:
            error, excerpt = exc.kind, exc.message
        except ValueError as exc:
            error, excerpt = "invalid_request", str(exc)
        except Exception:  # a bug must cost one attempt (retried), not the sender
            log.exception("delivery %s: unexpected failure", d.id)
            error, excerpt = "internal", "internal error"
        seconds = time.perf_counter() - t0
        finished = self.clock()
        decision = decide(status, error, attempt=d.attempt, now=finished, retry_until=d.retry_until,
                          policy=self.retry, rng=self.rng, retry_after_s=retry_after)
        m.REQUEST_SECONDS.labels(kind=d.kind).observe(seconds)
        return AttemptResult(
            delivery=d, started_at=started, finished_at=finished, latency_ms=int(seconds * 1000), url=url[:2048],
            status_code=status, error=error, excerpt=excerpt, verdict=decision.verdict,
            next_attempt_at=decision.next_attempt_at, gone=decision.disables_endpoint)

    def _request(self, d: DueDelivery, now_s: int) -> tuple[str, str, bytes | None, dict[str, str]]:
        if d.kind == "webhook":
            return d.url, "POST", d.body, webhook_headers(d.body, d.secrets, now_s, d.event_id, d.event_type, d.id)
        values = _values_decoder.decode(d.body)
        return postback_url(d.url, values), "GET", None, postback_headers(d.event_id, d.event_type, d.id)

    async def _record(self, results: list[AttemptResult]) -> None:
        for attempt in range(_RECORD_RETRIES):
            try:
                async with self.pool.acquire() as conn, conn.transaction():
                    streaks = await record_attempts(conn, results)
                    disabled = await disable_endpoints(conn, self._to_disable(results, streaks), self.clock())
                break
            except (asyncpg.PostgresError, OSError, asyncio.TimeoutError) as exc:
                # Not recorded: the leases run out and these are sent again (at least once).
                log.warning("recording %d delivery attempts failed (%s)", len(results), exc)
                if attempt == _RECORD_RETRIES - 1:
                    return
                await asyncio.sleep(0.2 * 2**attempt)
        _count(results, disabled)

    def _to_disable(self, results: list[AttemptResult], streaks: list[EndpointStreak]) -> list[tuple[EndpointStreak, str]]:
        gone = {r.delivery.endpoint_id for r in results if r.gone}
        now = self.clock()
        chosen = []
        for streak in streaks:
            if streak.id in gone:
                chosen.append((streak, "gone"))
            elif should_disable(streak.failure_streak, streak.failing_since, now, self.retry):
                chosen.append((streak, "failing"))
        return chosen

    async def measure_depth(self) -> None:
        async with self.pool.acquire() as conn:
            outbox, due = await due_count(conn, self.clock())
            paused = await is_paused(conn)
        record_queue_depth({"outbox": outbox, "deliveries": due})
        m.PAUSED.set(1 if paused else 0)

    async def run_forever(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        """Keep requests in flight until ``stop``; then finish those under way and record them."""
        concurrency = self.settings.delivery_concurrency
        poll_s = self.settings.delivery_poll_interval_ms / 1000
        in_flight: set[asyncio.Task] = set()
        done: list[AttemptResult] = []
        recorder = asyncio.create_task(self._record_loop(done, stop, in_flight))
        while not stop.is_set():
            room = concurrency - len(in_flight)
            if room <= 0:
                await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                continue
            claimed = await self._safe_claim(min(room, self.settings.delivery_batch_max))
            for d in claimed:
                task = asyncio.create_task(self._attempt(d))
                in_flight.add(task)
                task.add_done_callback(lambda t: (in_flight.discard(t), t.cancelled() or done.append(t.result())))
            if claimed and len(claimed) == room:
                await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            elif not claimed:
                await wait_for_wake(stop, wake, poll_s)
        await recorder

    async def _safe_claim(self, limit: int) -> list[DueDelivery]:
        try:
            return await self._claim(limit)
        except (asyncpg.PostgresError, OSError, asyncio.TimeoutError) as exc:
            log.warning("claiming deliveries failed: %s", exc)
            return []

    async def _record_loop(self, done: list[AttemptResult], stop: asyncio.Event, in_flight: set) -> None:
        while not (stop.is_set() and not in_flight and not done):
            if done:
                batch, done[:] = list(done), []
                await self._record(batch)
            else:
                await asyncio.sleep(_FLUSH_S)


def _count(results: list[AttemptResult], disabled: list) -> None:
    for r in results:
        kind = r.delivery.kind
        m.DELIVERIES.labels(kind=kind, verdict=r.verdict).inc()
        if r.verdict == "delivered":
            m.DELIVERY_LATENCY.labels(kind=kind).observe(
                max(0.0, (r.finished_at - r.delivery.event_created_at).total_seconds()))
        else:
            m.WEBHOOK_FAILURES.labels(kind=kind, reason=m.failure_label(r.status_code, r.error)).inc()
    if disabled:
        kinds = {r.delivery.endpoint_id: r.delivery.kind for r in results}
        for endpoint_id in disabled:
            m.ENDPOINTS_DISABLED.labels(kind=kinds.get(endpoint_id, "webhook")).inc()
