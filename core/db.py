"""Postgres connections: one pool per process, JSON codecs registered once.

``role``: every connection of the pool runs ``SET ROLE`` once when it opens (the api
passes ``afftok_app``, so it works under row-level security whatever login it uses).
The role survives the pool's reset between checkouts: ``RESET ALL`` leaves it alone.
"""

from __future__ import annotations

import functools

import asyncpg
import orjson

APP_ROLE = "afftok_app"  # the api's role under row-level security (migrations/0003_roles_rls.sql)


async def _init_connection(conn: asyncpg.Connection, *, role: str | None) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog")
    if role is not None:
        await conn.execute(f"set role {_quote_ident(role)}")


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def create_pool(
    database_url: str, *, min_size: int = 1, max_size: int = 10, role: str | None = None
) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        database_url, min_size=min_size, max_size=max_size, command_timeout=60,
        init=functools.partial(_init_connection, role=role),
    )


async def connect(database_url: str, *, role: str | None = None) -> asyncpg.Connection:
    """One connection set up like the pool's (the CLI's one-off work)."""
    conn = await asyncpg.connect(database_url)
    await _init_connection(conn, role=role)
    return conn
