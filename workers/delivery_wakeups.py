"""Wake-ups for the dispatcher and the sender: Postgres ``LISTEN`` on their channels.

``NOTIFY`` is delivered on commit, so a wake-up never arrives before the rows it is
about are visible. It is only a hint: both loops also poll, so a lost notification (or a
listening connection that dropped and is being reopened) delays work by at most the
poll interval and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

log = logging.getLogger(__name__)
_RECONNECT_S = 2.0


async def wait_for_wake(stop: asyncio.Event, wake: asyncio.Event | None, timeout_s: float) -> None:
    """Return when ``wake`` or ``stop`` is set, or after ``timeout_s``; clears ``wake``."""
    waiters = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        if wake is not None:
            wake.clear()


class Listener:
    """Sets an ``asyncio.Event`` per channel whenever that channel is notified;
    ``listening`` is set while every channel is being listened to."""

    def __init__(self, database_url: str, channels: list[str]):
        self.database_url = database_url
        self.events = {channel: asyncio.Event() for channel in channels}
        self.listening = asyncio.Event()
        self._conn: asyncpg.Connection | None = None

    def _notified(self, _conn, _pid, channel: str, _payload: str) -> None:
        self.events[channel].set()

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                self._conn = await asyncpg.connect(self.database_url)
                for channel in self.events:
                    await self._conn.add_listener(channel, self._notified)
                for event in self.events.values():
                    event.set()  # anything notified while not listening: look now
                self.listening.set()
                closed = asyncio.Event()
                self._conn.add_termination_listener(lambda _c: closed.set())
                await wait_for_wake(stop, closed, 3600 * 24)
            except (asyncpg.PostgresError, OSError, asyncio.TimeoutError) as exc:
                log.warning("delivery listener: %s; reconnecting", exc)
            finally:
                await self._close()
            await wait_for_wake(stop, None, _RECONNECT_S)

    async def _close(self) -> None:
        self.listening.clear()
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)
