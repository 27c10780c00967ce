"""``afftok deliveries pause|resume|status``: the operator's kill switch for outbound delivery.

Pausing stops every outbound request (affiliate postbacks and webhooks) within the
sender's next claim, without a restart; events keep arriving in the outbox and become
pending deliveries, so nothing is lost. Resuming wakes the sender at once. The switch
lives in Postgres (``delivery_switch``), so it holds for every worker process.
The database is ``DATABASE_URL``, else the local stack's (``up.json`` of ``afftok up``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json

from core.db import connect
from core.settings import Settings
from core.store.deliveries import is_paused, set_paused

_STATUS = """
select s.paused, s.changed_at, s.changed_by,
       (select count(*) from outbox_events where dispatched_at is null) as outbox,
       (select count(*) from deliveries where status = 'pending') as pending,
       (select count(*) from deliveries where status = 'dead') as dead,
       (select count(*) from delivery_endpoints where status = 'disabled') as disabled_endpoints
from delivery_switch s
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("pause", "resume", "status"))
    parser.add_argument("--database-url", default=None, help="default: DATABASE_URL, else the local stack's (up.json)")


def database_url(args: argparse.Namespace, settings: Settings) -> str:
    if args.database_url or settings.database_url:
        return args.database_url or settings.database_url
    path = settings.data_dir / "up.json"
    if path.exists():
        return json.loads(path.read_text())["database_url"]
    raise RuntimeError("no database: set DATABASE_URL or run `afftok up` first")


async def run(url: str, action: str, actor: str) -> dict:
    conn = await connect(url)
    try:
        if action != "status" and (action == "pause") != await is_paused(conn):
            async with conn.transaction():
                await set_paused(conn, action == "pause", actor)
        return dict(await conn.fetchrow(_STATUS))
    finally:
        await conn.close()


def command(args: argparse.Namespace, settings: Settings) -> int:
    status = asyncio.run(run(database_url(args, settings), args.action, f"cli:{getpass.getuser()}"))
    state = "paused" if status["paused"] else "delivering"
    print(f"deliveries {state} (since {status['changed_at']:%Y-%m-%d %H:%M:%S %Z}"
          f"{', by ' + status['changed_by'] if status['changed_by'] else ''})")
    print(f"outbox {status['outbox']}, pending {status['pending']}, dead {status['dead']},"
          f" disabled endpoints {status['disabled_endpoints']}")
    return 0
