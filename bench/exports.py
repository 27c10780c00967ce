"""Exports, measured: rows/s of streamed CSV and JSONL clicks exports, and of a background
job, with the api's (and worker's) resident memory before and at its peak during each.

    .venv/bin/python -m bench.exports                 # 1,000,000 clicks
    .venv/bin/python -m bench.exports --clicks 200000 # a quicker look

It starts the stack (``afftok up``), writes the clicks straight into the demo
organization's partitions with one ``insert … select generate_series`` (the export reads
clicks, not how they arrived), then downloads ``GET /v1/exports/clicks.{csv,jsonl}`` over
the clicks' whole window, sampling the api process's RSS every 20 ms. Target: at least
100,000 rows/s, and a peak RSS that does not grow with the export (flat memory).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import threading
import time

import asyncpg
import httpx
import psutil

from bench.stack import UpInfo, component_pids, running_stack
from core.store.partitions import ensure_daily_partitions

TARGET_ROWS_PER_S = 100_000
SPAN = dt.timedelta(days=20)

_FILL = """
insert into clicks (click_id, clicked_at, org_id, offer_id, affiliate_id, link_id, outcome, sub1, sub2, ip, user_agent,
                    referer, country, device_type)
select lpad(to_hex((extract(epoch from at) * 1000)::bigint), 12, '0') || md5(g::text), at, $1, $2, $3, $4,
       'redirect', 'sub-' || (g % 500), 'campaign-' || (g % 7), ('203.0.113.' || (g % 250))::inet,
       'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 bench/' || (g % 50), 'https://news.example/a/' || (g % 999),
       (array['DE', 'FR', 'US', 'IN'])[1 + g % 4], (array['desktop', 'mobile'])[1 + g % 2]
from generate_series(1, $5::int) g, lateral (select $6::timestamptz - g * ($7::float8 / $5) * interval '1 millisecond' as at) t
"""


async def fill_clicks(up: UpInfo, count: int, now: dt.datetime) -> None:
    conn = await asyncpg.connect(up.database_url)
    try:
        org_id = up.demo_org_id
        link = await conn.fetchrow("select id, offer_id, affiliate_id from links where org_id = $1 limit 1", org_id)
        days = {(now - SPAN + dt.timedelta(days=d)).date() for d in range(SPAN.days + 2)}
        await ensure_daily_partitions(conn, "clicks", days)
        step = 250_000
        for start in range(0, count, step):
            n = min(step, count - start)
            window_start = now - SPAN * start / count
            await conn.execute(_FILL, org_id, link["offer_id"], link["affiliate_id"], link["id"], n, window_start,
                               SPAN.total_seconds() * 1000 * n / count)
        await conn.execute("analyze clicks")
    finally:
        await conn.close()


class PeakRss:
    """The highest RSS of ``pid`` while the ``with`` block runs, sampled every 20 ms."""

    def __init__(self, pid: int):
        self.process = psutil.Process(pid)
        self.before = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()

    def __enter__(self) -> PeakRss:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def streamed(up: UpInfo, fmt: str, window: dict[str, str], api_pid: int) -> dict:
    headers = {"Authorization": f"Bearer {up.demo_api_key}"}
    size = newlines = 0
    with PeakRss(api_pid) as rss, httpx.Client(base_url=up.api_url, headers=headers, timeout=600) as client:
        start = time.perf_counter()
        with client.stream("GET", f"/v1/exports/clicks.{fmt}", params=window) as response:
            response.raise_for_status()
            for chunk in response.iter_raw():
                size += len(chunk)
                newlines += chunk.count(b"\n")
        elapsed = time.perf_counter() - start
    rows = newlines - (1 if fmt == "csv" else 0)
    return {"what": f"stream {fmt}", "rows": rows, "seconds": elapsed, "rows_per_s": rows / elapsed, "bytes": size,
            "rss_before": rss.before, "rss_peak": rss.peak}


def background(up: UpInfo, fmt: str, window: dict[str, str], worker_pid: int) -> dict:
    headers = {"Authorization": f"Bearer {up.demo_api_key}"}
    with PeakRss(worker_pid) as rss, httpx.Client(base_url=up.api_url, headers=headers, timeout=600) as client:
        job = client.post("/v1/exports", json={"kind": "clicks", "format": fmt, "filters": window}).json()
        while job["status"] in ("queued", "running"):
            time.sleep(0.2)
            job = client.get(f"/v1/exports/{job['id']}").json()
    assert job["status"] == "done", job
    elapsed = (dt.datetime.fromisoformat(job["finished_at"]) - dt.datetime.fromisoformat(job["started_at"]))
    seconds = elapsed.total_seconds()
    return {"what": f"job {fmt} (worker)", "rows": job["rows_written"], "seconds": seconds,
            "rows_per_s": job["rows_written"] / seconds, "bytes": job["bytes_written"],
            "rss_before": rss.before, "rss_peak": rss.peak}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.exports", description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    now = dt.datetime.now(dt.timezone.utc)
    window = {"from": (now - SPAN - dt.timedelta(hours=1)).isoformat(), "to": (now + dt.timedelta(minutes=1)).isoformat()}
    with running_stack() as up:
        started = time.perf_counter()
        asyncio.run(fill_clicks(up, args.clicks, now))
        print(f"filled {args.clicks:,} clicks in {time.perf_counter() - started:.1f} s")
        (api_pid,), (worker_pid,) = component_pids(up, "api"), component_pids(up, "worker")
        results = [streamed(up, fmt, window, api_pid) for fmt in ("csv", "jsonl")]
        results += [background(up, fmt, window, worker_pid) for fmt in ("csv",)]
    print("\n| export | rows | seconds | rows/s | MB | RSS before → peak | target |")
    print("|---|---:|---:|---:|---:|---|---|")
    for r in results:
        verdict = "PASS" if r["rows_per_s"] >= TARGET_ROWS_PER_S and r["rows"] == args.clicks else "FAIL"
        print(f"| {r['what']} | {r['rows']:,} | {r['seconds']:.1f} | {r['rows_per_s']:,.0f} | {r['bytes'] / 1e6:.0f} |"
              f" {_mib(r['rss_before'])} → {_mib(r['rss_peak'])} | {verdict} (≥ {TARGET_ROWS_PER_S:,}/s) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
