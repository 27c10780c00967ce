"""``afftok deliveries pause|resume|status``: the operator's kill switch for outbound delivery.

Pausing stops every outbound request (affiliate postbacks and webhooks) within the
sender's next claim, without a restart; events keep arriving in the outbox and become
pending deliveries, so nothing is lost. Resuming wakes the sender at once. The switch
lives in Postgres (``delivery_switch``), so it holds for every worker process.
The database is ``--database-url``, else ``DATABASE_URL``, else the local stack's
(``up.json`` of ``afftok up``). Failures are one line and exit status 1 (``afftok.cli``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass

import asyncpg

from afftok.export_command import connection_defaults
from core.db import connect
from core.settings import Settings
from core.store.deliveries import SwitchStatus, is_paused, set_paused, switch_status

CONNECT_TIMEOUT_S = 10.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("pause", "resume", "status"))
    parser.add_argument("--database-url", default=None,
                        help="default: DATABASE_URL, else the local stack's (up.json of afftok up)")


def database_url(args: argparse.Namespace, settings: Settings) -> str:
    url = args.database_url or settings.database_url or connection_defaults(settings).get("database_url")
    if not url:
        raise RuntimeError("no database: pass --database-url, set DATABASE_URL, or run `afftok up` first")
    return url


async def run(url: str, action: str, actor: str) -> SwitchStatus:
    try:
        conn = await asyncio.wait_for(connect(url), CONNECT_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        # The message never quotes the URL: it may hold a password.
        raise RuntimeError(f"cannot connect to the database ({exc or type(exc).__name__})") from None
    try:
        if action != "status" and (action == "pause") != await is_paused(conn):
            async with conn.transaction():
                await set_paused(conn, action == "pause", actor)
        return await switch_status(conn)
    except asyncpg.UndefinedTableError:
        raise RuntimeError("the database has no delivery tables: run `afftok migrate` first") from None
    finally:
        await conn.close()


def command(args: argparse.Namespace, settings: Settings) -> int:
    status = asyncio.run(run(database_url(args, settings), args.action, f"cli:{_user()}"))
    state = "paused" if status.paused else "delivering"
    print(f"deliveries {state} (since {status.changed_at:%Y-%m-%d %H:%M:%S %Z}"
          f"{', by ' + status.changed_by if status.changed_by else ''})")
    print(f"outbox {status.outbox}, pending {status.pending}, dead {status.dead},"
          f" disabled endpoints {status.disabled_endpoints}")
    return 0


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # a container user without a name
        return "unknown"
