"""Postbacks under load: the accept path's peak, and postback → conversion row lag.

Every postback names a real click (made through the demo link first) and a fresh
``external_id``, so each one becomes its own conversion: the worker does the full work
(attribution, commission, caps, fraud checks), not a dedupe no-op. wrk varies the path
with a generated Lua script; one wrk thread, so its request counter is a unique suffix.

- Peak: closed loop, as many connections as the click peak, worker paused.
- Lag: a paced run (``bench.paced_sender``: a fixed rate, every request's answer kept)
  with the whole stack live; ``received_at`` is the edge's clock when it accepted the
  postback, ``created_at`` Postgres' clock when the worker inserted the row. Every 202
  is matched to its row by ``external_id``: none missing, none extra.
"""

from __future__ import annotations

import asyncio
import http.client
import secrets
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import asyncpg
import msgspec

from bench.load_result import LoadResult
from bench.paced_sender import Sent, send_paced
from bench.wrk import run_wrk

_LUA = """
local ids = {%(ids)s}
local n = 0
local base = "%(path)s"
local prefix = "%(prefix)s"
request = function()
  n = n + 1
  return wrk.format("GET", base .. "&click_id=" .. ids[(n %% #ids) + 1] .. "&external_id=" .. prefix .. n)
end
"""

_LAG = """
select count(*) as rows,
       percentile_cont(0.5) within group (order by lag_ms) as p50_ms,
       percentile_cont(0.99) within group (order by lag_ms) as p99_ms,
       max(lag_ms) as max_ms
from (select extract(epoch from created_at - received_at)::float8 * 1000 as lag_ms
      from conversions where external_id like $1 || '%') as lags
"""
_COUNT = "select count(*) from conversions where external_id like $1 || '%'"
_IDS = "select external_id from conversions where external_id like $1 || '%'"


class PostbackPeak(msgspec.Struct, kw_only=True):
    run: LoadResult  # the median round
    accepted: int  # 202s of every peak round, warm-up included (wrk: answers minus non-2xx)
    rows: int  # conversions of every peak round (warm-up included) once the worker drained them


class PostbackLag(msgspec.Struct, kw_only=True):
    sent: int
    accepted: int  # 202s answered in the paced run
    rows: int  # conversions found with the run's prefix
    missing: int  # 202s without a row
    unexpected: int  # rows without a 202
    accept_p50_ms: float | None  # as the sender saw the 202s
    accept_p99_ms: float | None
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None


def make_click_ids(demo_link: str, count: int) -> list[str]:
    """Click the demo link ``count`` times; the click ids from the redirects."""
    parts = urlsplit(demo_link)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    ids = []
    try:
        for _ in range(count):
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            location = response.getheader("location", "")
            ids.extend(parse_qs(urlsplit(location).query).get("click_id", [])[:1])
    finally:
        conn.close()
    if not ids:
        raise RuntimeError(f"the demo link gave no click ids: {demo_link}")
    return ids


def postback_script(postback_url: str, click_ids: list[str], prefix: str) -> str:
    """A wrk Lua file for ``postback_url`` (the demo one, without click_id/external_id)."""
    parts = urlsplit(postback_url)
    kept = "&".join(p for p in parts.query.split("&") if not p.startswith(("click_id=", "external_id=")))
    source = _LUA % {
        "ids": ", ".join(f'"{i}"' for i in click_ids), "path": f"{parts.path}?{kept}", "prefix": prefix
    }
    path = Path(tempfile.mkdtemp(prefix="afftok-bench-lua-")) / "postback.lua"
    path.write_text(source)
    return str(path)


def base_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/"


def new_prefix(kind: str) -> str:
    """A fresh ``external_id`` prefix, so one run's conversions are told from any other's."""
    return f"{kind}-{secrets.token_hex(4)}-"


def run_postback_peak(
    postback_url: str, click_ids: list[str], duration_s: float, *, prefix: str, connections: int, binary: str,
) -> LoadResult:
    script = postback_script(postback_url, click_ids, prefix)
    return run_wrk(base_url(postback_url), duration_s, connections=connections, binary=binary, script=script)


async def wait_for_conversions(
    database_url: str, prefix: str, expected: int, *, timeout_s: float | None = None, settle_s: float = 30,
) -> int:
    """Wait until ``expected`` conversions with ``prefix`` are in, or their count stops
    growing for ``settle_s``; return the count. The timeout defaults to the backlog at a
    slow 200 conversions/s (at least 5 minutes): a peak run queues far more postbacks than
    the worker applies per second, and the check is that none is lost, not how fast."""
    if timeout_s is None:
        timeout_s = max(300.0, expected / 200)
    conn = await asyncpg.connect(database_url)
    try:
        return await _wait_count(conn, prefix, expected, timeout_s, settle_s)
    finally:
        await conn.close()


async def _wait_count(conn: asyncpg.Connection, prefix: str, expected: int, timeout_s: float, settle_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    last, last_change, last_report = -1, time.monotonic(), time.monotonic()
    while True:
        count = await conn.fetchval(_COUNT, prefix)
        if count >= expected or time.monotonic() >= deadline:
            return count
        if time.monotonic() - last_report >= 15:
            print(f"  conversions in: {count:,} / {expected:,}", flush=True)
            last_report = time.monotonic()
        if count != last:
            last, last_change = count, time.monotonic()
        elif time.monotonic() - last_change >= settle_s:
            return count
        await asyncio.sleep(0.25)


async def run_postback_paced(
    postback_url: str, click_ids: list[str], *, count: int, rate_rps: float, connections: int,
) -> tuple[list[Sent], str]:
    """``count`` postbacks at ``rate_rps``; each request's outcome, and their id prefix."""
    prefix = new_prefix("lag")
    parts = urlsplit(postback_url)
    kept = "&".join(p for p in parts.query.split("&") if not p.startswith(("click_id=", "external_id=")))
    base = f"{parts.path}?{kept}"

    def path_of(index: int) -> str:
        return f"{base}&click_id={click_ids[index % len(click_ids)]}&external_id={prefix}{index}"

    sent = await send_paced(parts.hostname, parts.port, path_of, count=count, rate_rps=rate_rps, connections=connections)
    return sent, prefix


async def measure_postback_lag(
    database_url: str, prefix: str, sent: list[Sent], *, timeout_s: float = 300, settle_s: float = 5,
) -> PostbackLag:
    """Wait until the run's conversions are in (or stop coming), then compare them with
    the 202s one by one and read their lag percentiles."""
    accepted = {f"{prefix}{s.index}" for s in sent if s.status == 202}
    conn = await asyncpg.connect(database_url)
    try:
        await _wait_count(conn, prefix, len(accepted), timeout_s, settle_s)
        found = {r["external_id"] for r in await conn.fetch(_IDS, prefix)}
        row = await conn.fetchrow(_LAG, prefix)
    finally:
        await conn.close()
    latencies = sorted(s.latency_ms for s in sent if s.status == 202)
    return PostbackLag(
        sent=len(sent), accepted=len(accepted), rows=row["rows"], missing=len(accepted - found),
        unexpected=len(found - accepted), p50_ms=row["p50_ms"], p99_ms=row["p99_ms"], max_ms=row["max_ms"],
        accept_p50_ms=_percentile(latencies, 0.5), accept_p99_ms=_percentile(latencies, 0.99),
    )


def _percentile(ordered: list[float], q: float) -> float | None:
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else None
