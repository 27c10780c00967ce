"""Apply ``migrations/*.sql`` in name order, each once, under an advisory lock.

Applied versions are recorded in ``schema_migrations``; running twice changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg

_LOCK_KEY = 0x_AF_F7_0C  # any constant: serializes concurrent migrators


def migration_files(migrations_dir: Path) -> list[Path]:
    return sorted(p for p in migrations_dir.glob("*.sql") if p.is_file())


async def apply_migrations(conn: asyncpg.Connection, migrations_dir: Path) -> list[str]:
    """Apply pending migrations; return the versions applied now."""
    applied_now: list[str] = []
    await conn.execute("select pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            "create table if not exists schema_migrations ("
            " version text primary key, applied_at timestamptz not null default now())"
        )
        done = {r["version"] for r in await conn.fetch("select version from schema_migrations")}
        for path in migration_files(migrations_dir):
            version = path.stem
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("insert into schema_migrations (version) values ($1)", version)
            applied_now.append(version)
    finally:
        await conn.execute("select pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now
