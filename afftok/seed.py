"""``afftok seed``: fill a database with a realistic network and its traffic, fast.

``--clicks 10M`` clicks-equivalent over ``--days`` (ending now): the statistics rollups
carry the whole volume; the last ``--raw-days`` (capped at ``--raw-clicks``) are also
written as raw clicks and conversions, so listings, exports and the dashboard show real
rows that agree with the rollups. ``--seed`` makes the network and its numbers
reproducible; ``--org`` seeds into an existing organization instead of a new one.
The shapes and the write path are described in ``afftok.seed_network``,
``afftok.seed_traffic``, ``afftok.seed_raw`` and ``afftok.seed_run``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import re
import sys
import uuid

from afftok.seed_database import seed_database
from afftok.seed_run import SeedOptions, SeedSummary, run_seed
from core.db import connect
from core.migrate import apply_migrations
from core.settings import Settings

_COUNT = re.compile(r"([0-9]+(?:\.[0-9]+)?)([kKmMgG]?)")
_MULTIPLIERS = {"": 1, "k": 1_000, "m": 1_000_000, "g": 1_000_000_000}


def count(text: str) -> int:
    """``200k``, ``1M``, ``2.5M``, ``100000``: a count, for argparse."""
    match = _COUNT.fullmatch(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count such as 20000, 200k or 10M")
    return round(float(match[1]) * _MULTIPLIERS[match[2].lower()])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clicks", type=count, default=count("1M"), help="clicks-equivalent: 20k, 1M, 100M (default 1M)")
    parser.add_argument("--days", type=int, default=90, help="span ending now (default 90)")
    parser.add_argument("--seed", type=int, default=None, help="the same seed makes the same network and numbers")
    parser.add_argument("--org", type=uuid.UUID, default=None, help="an existing organization (default: a new one)")
    parser.add_argument("--raw-clicks", type=count, default=count("200k"), help="at most this many raw click rows")
    parser.add_argument("--raw-days", type=int, default=1, help="raw rows for the last N days (default 1)")
    parser.add_argument("--database-url", default=None, help="default: DATABASE_URL, else afftok up's database")


def options_of(args: argparse.Namespace, settings: Settings) -> SeedOptions:
    if args.clicks < 1 or args.days < 1 or args.raw_clicks < 0 or args.raw_days < 0:
        raise ValueError("--clicks and --days must be positive, --raw-clicks and --raw-days not negative")
    return SeedOptions(
        clicks=args.clicks, days=args.days, seed=args.seed if args.seed is not None else random.randrange(2**31),
        org_id=args.org, raw_clicks=args.raw_clicks, raw_days=args.raw_days, sub1_limit=settings.stats_sub1_limit,
    )


def command(args: argparse.Namespace, settings: Settings) -> int:
    options = options_of(args, settings)
    with seed_database(settings, args.database_url, _say) as (url, started_here):
        summary = asyncio.run(seed(url, options, migrate=started_here, migrations_dir=settings.migrations_dir))
    print(describe(summary))
    return 0


async def seed(database_url: str, options: SeedOptions, *, migrate: bool = False, migrations_dir=None,
               now: dt.datetime | None = None, progress=None) -> SeedSummary:
    conn = await connect(database_url)
    try:
        if migrate:
            await apply_migrations(conn, migrations_dir)
        now = now or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
        return await run_seed(conn, options, now, progress or _say)
    finally:
        await conn.close()


def _say(line: str) -> None:
    print(f"afftok seed: {line}", file=sys.stderr, flush=True)


def describe(s: SeedSummary) -> str:
    statuses = ", ".join(f"{n:,} {status}" for status, n in s.conversions.items())
    currencies = ", ".join(f"{c} {n}" for c, n in s.offer_currencies.items())
    raw = (f"{s.raw_start:%Y-%m-%d %H:%M} UTC to now: {s.raw_clicks:,} clicks and {s.raw_conversions:,}"
           " conversions written as rows" if s.raw_start else "none")
    lines = [
        f"seeded organization {s.org_id} (seed {s.seed})",
        f"  catalog      {s.advertisers} advertisers, {s.offers} offers ({currencies}), {s.affiliates:,} affiliates,"
        f" {s.links:,} links, {s.sub1_values:,} sub1 values",
        f"  traffic      {s.clicks:,} clicks from {s.start:%Y-%m-%d %H:%M} to {s.end:%Y-%m-%d %H:%M} UTC,"
        f" {sum(s.conversions.values()):,} conversions ({statuses})",
        f"  raw window   {raw}",
        *(f"  {table:<20} {rows:>12,} rows" for table, rows in s.rollup_rows.items()),
        f"  elapsed      {s.elapsed_s:.1f} s ({s.clicks / max(s.elapsed_s, 1e-9):,.0f} clicks/s,"
        f" {sum(s.rollup_rows.values()) / max(s.elapsed_s, 1e-9):,.0f} rollup rows/s)",
    ]
    if s.api_key:
        lines.append(f"  owner key    {s.api_key}   (shown once)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m afftok.seed``: the same as ``afftok seed``."""
    from core.settings import load_settings

    parser = argparse.ArgumentParser(prog="afftok seed", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return command(parser.parse_args(argv), load_settings())


if __name__ == "__main__":
    sys.exit(main())
