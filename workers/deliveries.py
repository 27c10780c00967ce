"""The delivery worker's parts, run for the worker process's life: a ``LISTEN``
connection, the outbox dispatcher, the sender, and a timer measuring the queue depths
(``afftok_queue_depth{stream="outbox"|"deliveries"}``). Started in ``on_startup``,
stopped in ``on_shutdown`` (the sender finishes and records the requests under way).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from core.store.deliveries import DELIVERIES_CHANNEL, OUTBOX_CHANNEL
from workers.delivery_dispatcher import OutboxDispatcher
from workers.delivery_sender import DeliverySender
from workers.delivery_wakeups import Listener, wait_for_wake

log = logging.getLogger(__name__)
_DEPTH_INTERVAL_S = 5.0


async def start_deliveries(ctx: dict) -> None:
    settings = ctx["settings"]
    stop = asyncio.Event()
    listener = Listener(settings.database_url, [OUTBOX_CHANNEL, DELIVERIES_CHANNEL])
    dispatcher = OutboxDispatcher(settings, ctx["pool"])
    sender = DeliverySender(settings, ctx["pool"])

    async def measure_depth() -> None:
        while not stop.is_set():
            try:
                await sender.measure_depth()
            except (asyncpg.PostgresError, OSError, asyncio.TimeoutError) as exc:
                log.warning("delivery queue depth: %s", exc)
            await wait_for_wake(stop, None, _DEPTH_INTERVAL_S)

    async def run_all() -> None:
        await asyncio.gather(
            listener.run_forever(stop),
            dispatcher.run_forever(stop, listener.events[OUTBOX_CHANNEL]),
            sender.run_forever(stop, listener.events[DELIVERIES_CHANNEL]),
            measure_depth(),
        )

    ctx["deliveries_stop"] = stop
    ctx["deliveries_task"] = asyncio.create_task(run_all(), name="deliveries")
