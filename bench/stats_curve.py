"""Stats at scale: GET /v1/stats timed over HTTP on databases seeded with 1M, 10M and 100M
clicks-equivalent (``.venv/bin/python -m bench.stats_curve``).

For each size: a fresh database on a Postgres this bench starts (with a Redis for the
api), migrated, seeded by ``afftok seed``'s code (one organization, a fixed seed), its
stats tables vacuumed and analyzed (what autovacuum does soon after a bulk load); then
the api (``afftok api``, as deployed: uvicorn, its own pool under row-level security,
rate limit off) answers each query ``--requests`` times after ``--warmup`` requests, one
in flight over one keep-alive connection, timed from send to the whole body read. The
rollup rows each query reads (the plan's cube and pieces, counted in SQL) and the
database size are reported beside p50/p95/p99, and the typical query's statement is
EXPLAINed (ANALYZE, BUFFERS) so a miss can be read. Results go to
``bench/results/stats_curve.json``; a markdown table is printed for bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import msgspec

from afftok.seed import count, seed
from afftok.seed_rollups import DAILY_TABLES, TABLES
from afftok.seed_run import SeedOptions
from afftok.servers import PostgresServer, RedisServer
from api.stats_queries import _Sql, _statement
from bench.machine import this_machine
from bench.processes import die_with_parent, listening_socket, stop, wait_until_answering
from core.db import APP_ROLE, connect
from core.migrate import apply_migrations
from core.permissions import Scope
from core.settings import REPO_ROOT
from core.stats import StatsRequest, plan_stats
from core.store.api_keys import create_api_key

RESULTS = REPO_ROOT / "bench" / "results" / "stats_curve.json"
TYPICAL = "30 days by day, offer"
QUERIES = {  # name: (days, query parameters, whose key)
    TYPICAL: (30, {"group_by": "day,offer"}, "owner"),
    "7 days by hour, Asia/Kolkata": (7, {"group_by": "hour", "tz": "Asia/Kolkata"}, "owner"),
    "30 days by country, device": (30, {"group_by": "country,device"}, "owner"),
    "30 days by affiliate, -clicks, limit 50": (30, {"group_by": "affiliate", "sort": "-clicks", "limit": "50"}, "owner"),
    "affiliate key: 30 days by day": (30, {"group_by": "day"}, "affiliate"),
}
TARGET_P95_MS = 50.0


class QueryTiming(msgspec.Struct, kw_only=True):
    query: str
    params: dict[str, str]
    requests: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rows_in_range: int  # rollup rows the plan reads
    cube: str
    page_rows: int


class SizeResult(msgspec.Struct, kw_only=True):
    clicks: int
    seed_s: float
    vacuum_analyze_s: float
    rollup_rows: dict[str, int]
    database_bytes: int
    queries: list[QueryTiming]
    typical_explain: str


def _params(days: int, extra: dict[str, str], now: dt.datetime) -> dict[str, str]:
    import zoneinfo

    today = now.astimezone(zoneinfo.ZoneInfo(extra.get("tz", "UTC"))).date()
    return {"from": (today - dt.timedelta(days=days - 1)).isoformat(), "to": today.isoformat(), **extra}


async def _prepare(url: str, size: int, seed_value: int) -> tuple[object, float, float, str, uuid.UUID]:
    """Migrate, seed and analyze one database; returns (summary, seed s, vacuum s, the key
    of the affiliate with the most clicks, that affiliate)."""
    conn = await connect(url)
    try:
        await apply_migrations(conn, REPO_ROOT / "migrations")
    finally:
        await conn.close()
    began = time.monotonic()
    summary = await seed(url, SeedOptions(clicks=size, seed=seed_value), progress=lambda line: print("  " + line, flush=True))
    seeded_s = time.monotonic() - began
    conn = await connect(url)
    try:
        began = time.monotonic()
        for table in TABLES + DAILY_TABLES:
            await conn.execute(f"vacuum (analyze) {table}")
        vacuum_s = time.monotonic() - began
        top = await conn.fetchval("select affiliate_id from stats_affiliate_1h where org_id = $1 and clicks > 0"
                                  " group by 1 order by sum(clicks) desc limit 1", summary.org_id)
        key = await create_api_key(conn, summary.org_id, "bench affiliate", "affiliate", affiliate_id=top)
    finally:
        await conn.close()
    return summary, seeded_s, vacuum_s, key.key, top


def _start_api(url: str, redis_url: str, label: str, data_dir: Path) -> tuple[subprocess.Popen, str]:
    sock = listening_socket()
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "AFFTOK_REDIS_PREFIX": f"bench-stats-{label}",
           "AFFTOK_API_RATE_LIMIT_PER_MINUTE": "0", "AFFTOK_DATA_DIR": str(data_dir)}
    with open(data_dir / f"api-{label}.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "afftok", "api", "--fd", str(sock.fileno())], env=env, pass_fds=(sock.fileno(),),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent)
    api_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    wait_until_answering(f"{api_url}/healthz", proc, 60)
    return proc, api_url


def _time_query(client: httpx.Client, key: str, params: dict[str, str], requests: int, warmup: int) -> tuple[list[float], int]:
    headers = {"Authorization": f"Bearer {key}"}
    for _ in range(warmup):
        client.get("/v1/stats", params=params, headers=headers).raise_for_status()
    took = []
    for _ in range(requests):
        began = time.perf_counter()
        response = client.get("/v1/stats", params=params, headers=headers)
        took.append((time.perf_counter() - began) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"GET /v1/stats {params}: {response.status_code} {response.text[:300]}")
    return took, len(response.json()["data"])


async def _rows_in_range(url: str, org_id: uuid.UUID, plan) -> int:
    conn = await connect(url)
    try:
        total = 0
        affiliate = plan.filters.get("affiliate")
        for piece in plan.pieces:
            table = f"stats_{plan.cube}_{piece.grain}"
            total += await conn.fetchval(
                f"select count(*) from {table} where org_id = $1 and bucket >= $2 and bucket < $3"
                + (" and affiliate_id = any($4::uuid[])" if affiliate else ""),
                org_id, piece.start, piece.end, *([[uuid.UUID(a) for a in affiliate]] if affiliate else []))
        return total
    finally:
        await conn.close()


async def _explain(url: str, org_id: uuid.UUID, plan) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of the statement the api runs, as the api runs it."""
    conn = await connect(url, role=APP_ROLE)
    try:
        async with conn.transaction():
            await conn.execute("select set_config('afftok.org_id', $1, true)", str(org_id))
            sql = _Sql()
            sql.param(org_id, "uuid")
            statement = _statement(plan, sql)
            rows = await conn.fetch(f"explain (analyze, buffers) {statement}", *sql.args)
        return "\n".join(r[0] for r in rows)
    finally:
        await conn.close()


def _plan(params: dict[str, str], affiliate_id: uuid.UUID | None, now: dt.datetime):
    request = msgspec.convert({k: (int(v) if k == "limit" else v) for k, v in params.items()}, StatsRequest)
    return plan_stats(request, Scope(affiliate_id=affiliate_id), now)


def _percentile(values: list[float], pct: int) -> float:
    return round(statistics.quantiles(values, n=100, method="inclusive")[pct - 1], 2)


def measure_size(pg_url: str, redis_url: str, size: int, args, data_dir: Path) -> SizeResult:
    label = f"{size // 1_000_000}m" if size >= 1_000_000 else f"{size // 1000}k"
    url = _database(pg_url, f"stats_{label}")
    print(f"stats curve: {size:,} clicks-equivalent into database stats_{label}", flush=True)
    summary, seed_s, vacuum_s, affiliate_key, affiliate_id = asyncio.run(_prepare(url, size, args.seed))
    proc, api_url = _start_api(url, redis_url, label, data_dir)
    timings, now = [], dt.datetime.now(dt.timezone.utc)
    try:
        with httpx.Client(base_url=api_url, timeout=60) as client:
            for name, (days, extra, whose) in QUERIES.items():
                params = _params(days, extra, now)
                key = summary.api_key if whose == "owner" else affiliate_key
                took, page_rows = _time_query(client, key, params, args.requests, args.warmup)
                plan = _plan(params, affiliate_id if whose == "affiliate" else None, now)
                timings.append(QueryTiming(
                    query=name, params=params, requests=len(took), p50_ms=_percentile(took, 50),
                    p95_ms=_percentile(took, 95), p99_ms=_percentile(took, 99), cube=plan.cube, page_rows=page_rows,
                    rows_in_range=asyncio.run(_rows_in_range(url, summary.org_id, plan))))
                print(f"  {name}: p50 {timings[-1].p50_ms} ms, p95 {timings[-1].p95_ms} ms,"
                      f" {timings[-1].rows_in_range:,} rollup rows", flush=True)
    finally:
        stop(proc)
    typical = _plan(_params(QUERIES[TYPICAL][0], QUERIES[TYPICAL][1], now), None, now)
    explain = asyncio.run(_explain(url, summary.org_id, typical))
    return SizeResult(clicks=size, seed_s=round(seed_s, 1), vacuum_analyze_s=round(vacuum_s, 1),
                      rollup_rows=summary.rollup_rows, database_bytes=asyncio.run(_database_bytes(url)),
                      queries=timings, typical_explain=explain)


async def _database_bytes(url: str) -> int:
    conn = await connect(url)
    try:
        return await conn.fetchval("select pg_database_size(current_database())")
    finally:
        await conn.close()


def _database(pg_url: str, name: str) -> str:
    async def create():
        conn = await connect(pg_url)
        try:
            await conn.execute(f"drop database if exists {name} with (force)")
            await conn.execute(f"create database {name}")
        finally:
            await conn.close()

    asyncio.run(create())
    return pg_url.rsplit("/", 1)[0] + f"/{name}"


def markdown(results: list[SizeResult]) -> str:
    lines = ["| clicks-equivalent | query | rollup rows read | p50 | p95 | p99 |", "|---|---|---|---|---|---|"]
    for r in results:
        for q in r.queries:
            lines.append(f"| {r.clicks / 1e6:g}M | {q.query} ({q.cube} cube) | {q.rows_in_range:,} | {q.p50_ms:.1f} ms"
                         f" | {q.p95_ms:.1f} ms | {q.p99_ms:.1f} ms |")
    lines += ["", "| clicks-equivalent | seed | vacuum analyze | rollup rows | database |", "|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.clicks / 1e6:g}M | {r.seed_s:.0f} s | {r.vacuum_analyze_s:.0f} s |"
                     f" {sum(r.rollup_rows.values()):,} | {r.database_bytes / 2**30:.2f} GiB |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.stats_curve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1M,10M,100M", help="clicks-equivalent per database, comma-separated")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per query")
    parser.add_argument("--warmup", type=int, default=20, help="requests per query before timing")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", action="store_true", help="keep the data directory (databases and logs)")
    args = parser.parse_args(argv)
    sizes = [count(s) for s in args.sizes.split(",")]
    data_dir = Path(tempfile.mkdtemp(prefix="afftok-stats-curve-"))
    pg, redis = PostgresServer(data_dir / "postgres").start(), RedisServer(data_dir / "redis").start()
    results = []
    try:
        for size in sizes:
            results.append(measure_size(pg.url, redis.url, size, args, data_dir))
    finally:
        redis.stop()
        pg.stop()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_bytes(msgspec.json.format(msgspec.json.encode(
        {"machine": this_machine(), "when": dt.datetime.now(dt.timezone.utc), "sizes": results})))
    print(f"\nMachine: {this_machine().describe()}\n\n{markdown(results)}\n")
    for r in results:
        typical = next(q for q in r.queries if q.query == TYPICAL)
        verdict = "PASS" if typical.p95_ms <= TARGET_P95_MS else "FAIL"
        print(f"typical query p95 at {r.clicks / 1e6:g}M: {typical.p95_ms:.1f} ms (target ≤ {TARGET_P95_MS:g} ms) {verdict}")
    print(f"\nEXPLAIN (ANALYZE, BUFFERS) of the typical query at {results[-1].clicks / 1e6:g}M:\n{results[-1].typical_explain}")
    print(f"\nresults: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
