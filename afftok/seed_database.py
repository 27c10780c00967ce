"""Which database ``afftok seed`` fills: ``--database-url``, else ``DATABASE_URL``, else the
embedded one of ``afftok up`` (its data directory's Postgres): the running stack's when
``afftok up`` is running (``up.json``), else started here for the seed, migrated as
``afftok up`` would, and stopped afterwards. While it runs here it holds ``up.lock``,
so an ``afftok up`` started meanwhile refuses instead of starting a second server on the
same data directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from typing import Iterator

from afftok.servers import PostgresServer
from core.settings import Settings


@contextlib.contextmanager
def seed_database(settings: Settings, database_url: str | None, notice) -> Iterator[tuple[str, bool]]:
    """Yield (database url, whether it was started here and needs migrating)."""
    url = database_url or settings.database_url
    if url:
        yield url, False
        return
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / "up.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # afftok up is running: use its database
            yield _running_stack_url(data_dir), False
            return
        server = PostgresServer(data_dir / "postgres").start()
        notice(f"started the embedded Postgres of {data_dir} ({server.url})")
        try:
            yield server.url, True
        finally:
            server.stop()


def _running_stack_url(data_dir) -> str:
    try:
        up = json.loads((data_dir / "up.json").read_text())
        os.kill(int(up["pid"]), 0)
        return up["database_url"]
    except (OSError, ValueError, KeyError) as exc:
        raise RuntimeError(f"afftok up holds {data_dir / 'up.lock'} but its up.json is not ready ({exc});"
                           " try again once it is up, or pass --database-url") from None
