"""The dispatcher: outbox events become deliveries, one per receiving endpoint.

Contract (run it twice, nothing changes the second time): ``dispatch_once`` locks a
batch of undispatched events (``SKIP LOCKED``, so several dispatchers share the
outbox), makes their deliveries (unique per endpoint and event), and marks them
dispatched, all in one transaction; a crash before commit leaves the events for the
next run. The endpoints are the ones active at that moment (``core.delivery_routing``);
an event no endpoint takes is simply marked dispatched.

What a delivery keeps is fixed here: a webhook's JSON body, or a postback's macro
values (with the click's sub1..sub5); the URL is read at send time, so a corrected URL
applies to what is still pending.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Callable

import asyncpg
import msgspec

from core.delivery_requests import postback_values, webhook_body
from core.delivery_routing import EndpointRoute, EventFacts, route_event
from core.settings import Settings
from core.store.deliveries import (
    DELIVERIES_CHANNEL, NewDelivery, OutboxEvent, insert_deliveries, load_routes, mark_dispatched, notify,
    take_outbox_events,
)
from workers.delivery_wakeups import wait_for_wake

log = logging.getLogger(__name__)
_encoder = msgspec.json.Encoder()
DISPATCH_BATCH_MAX = 1000
_RETRY_S = 1.0


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class OutboxDispatcher:
    def __init__(self, settings: Settings, pool: asyncpg.Pool, *, clock: Callable[[], dt.datetime] = utc_now,
                 batch_max: int = DISPATCH_BATCH_MAX):
        self.settings = settings
        self.pool = pool
        self.clock = clock
        self.batch_max = batch_max

    async def dispatch_once(self) -> int:
        """Dispatch one batch; return the number of events taken (0: the outbox is empty)."""
        now = self.clock()
        async with self.pool.acquire() as conn, conn.transaction():
            events = await take_outbox_events(conn, self.batch_max)
            if not events:
                return 0
            routes = await load_routes(conn, {e.org_id for e in events})
            made = await insert_deliveries(conn, [d for e in events for d in self._deliveries(e, routes, now)], now)
            await mark_dispatched(conn, [e.id for e in events], now)
            if made:
                await notify(conn, DELIVERIES_CHANNEL)
        return len(events)

    def _deliveries(self, event: OutboxEvent, routes: dict, now: dt.datetime) -> list[NewDelivery]:
        endpoints: list[EndpointRoute] = routes.get(event.org_id, [])
        facts = EventFacts(event_type=event.event_type, affiliate_id=event.affiliate_id, offer_id=event.offer_id,
                           goal=event.payload.get("goal"))
        kinds = {e.id: e.kind for e in endpoints}
        chosen = route_event(facts, endpoints)
        if not chosen:
            return []
        bodies = {
            "webhook": webhook_body(event.event_id, event.event_type, event.org_id, event.created_at, event.payload),
            "postback": _encoder.encode(postback_values(event.event_id, event.payload, event.subs)),
        }
        retry_until = now + dt.timedelta(seconds=self.settings.delivery_max_age_s)
        return [NewDelivery(
            org_id=event.org_id, endpoint_id=endpoint_id, event_id=event.event_id, event_type=event.event_type,
            body=bodies[kinds[endpoint_id]], event_created_at=event.created_at, retry_until=retry_until,
        ) for endpoint_id in chosen]

    async def run_forever(self, stop: asyncio.Event, wake: asyncio.Event) -> None:
        """Dispatch until the outbox is empty, then wait for a NOTIFY (or the poll interval)."""
        poll_s = self.settings.delivery_poll_interval_ms / 1000
        while not stop.is_set():
            try:
                if await self.dispatch_once() == self.batch_max:
                    continue
            except (asyncpg.PostgresError, OSError, asyncio.TimeoutError) as exc:
                log.warning("outbox dispatch failed, retrying: %s", exc)
                await wait_for_wake(stop, None, _RETRY_S)
                continue
            await wait_for_wake(stop, wake, poll_s)
