"""``make bench``: the edge against bare Starlette and nginx, then latency, lag and ingest.

One run, one machine, load sent to 127.0.0.1 only, every load run bounded in time:

1. ``afftok up`` in a temporary data directory; bare Starlette and nginx beside it.
2. Peak throughput (wrk, closed loop) of each target, interleaved rounds, the ingest
   worker paused so the edge gets the same machine as the baselines; then the postback
   accept path's peak the same way (every postback a real click id and a fresh
   ``external_id``), and every 202 of it counted as a conversion row once the worker runs.
3. The edge at half its peak (hey, fixed rate) with the whole stack live, and the same
   clicks as the edge timed them (its /metrics histogram, before minus after); then the
   lag from click to ``clicks`` row for exactly those clicks, and 302s counted vs rows
   found; then bare Starlette at the same rate, to show what the load tool itself adds.
4. Postbacks at a fixed rate with the whole stack live: each 202 matched to its
   conversion row, and postback → row lag (``received_at`` → ``created_at``).
5. One ingest consumer draining a queued backlog alone: clicks per second.
6. Tenant timing: another organization's offer id vs ids that exist nowhere, read with
   the demo key one request at a time; same status, same body, medians compared.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import sys
import time
from contextlib import ExitStack, nullcontext

from bench import baselines
from bench.click_lag import ClickLag, measure_click_lag, wait_for_drain
from bench.edge_latency import ServerLatency, scrape_latency_buckets, server_latency
from bench.hey import run_hey
from bench.ingest_capacity import measure_ingest_capacity
from bench.load_result import LoadResult
from bench.machine import cpu_busy_pct, this_machine
from bench.postbacks import (
    PostbackLag, PostbackPeak, make_click_ids, measure_postback_lag, new_prefix, run_postback_paced,
    run_postback_peak, wait_for_conversions,
)
from bench.processes import require_loopback
from bench.report import markdown_report, terminal_report
from bench.results import BARE, EDGE, NGINX, BenchResults, evaluate, save
from bench.stack import UpInfo, component_pids, paused, running_stack
from bench.tenant_timing import measure_tenant_timing
from bench.tools import MissingTool, find_tools
from bench.wrk import run_wrk

BUSY_WARN_PCT = 10


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured run (default 10)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up per target (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="peak runs per target, interleaved; the median counts (default 3)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument(
        "--hey-connections", type=int, default=16,
        help="hey workers (keep-alive connections) at half peak, sharing one total rate (default 16: on a shared "
             "2-core box hey's per-connection goroutines dominate the tail; the bare Starlette row at the same "
             "rate shows the tool's floor)",
    )
    parser.add_argument("--ingest-clicks", type=int, default=200_000, help="backlog for the ingest run (default 200000)")
    parser.add_argument("--tenant-requests", type=int, default=2000,
                        help="GET /v1/offers/{id} per group in the tenant timing step (default 2000)")
    parser.add_argument("--postback-rate", type=float, default=500,
                        help="postbacks per second in the paced lag run (default 500)")
    parser.add_argument("--postback-clicks", type=int, default=2000,
                        help="real clicks made first, whose ids the postbacks name (default 2000)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 3 s runs, 1 s warm-up, 1 round, 50k ingest clicks, 300 tenant requests per group")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds, args.ingest_clicks, args.tenant_requests = 3, 1, 1, 50_000, 300
        args.postback_clicks = 500
    return args


def _median_run(runs: list[LoadResult]) -> LoadResult:
    median_rps = statistics.median_low(r.rps for r in runs)
    return next(r for r in runs if r.rps == median_rps)


def measure_peaks(targets: dict[str, str], args, tools) -> tuple[dict[str, list[LoadResult]], int]:
    """Every target's rounds, and how many clicks the edge answered (warm-up included)."""
    wrk = dict(connections=args.connections, binary=tools["wrk"])
    rounds: dict[str, list[LoadResult]] = {name: [] for name in targets}
    edge_requests = 0
    for name, url in targets.items():
        warmup = run_wrk(url, args.warmup, **wrk)
        if name == EDGE:
            edge_requests += warmup.requests
    for round_no in range(args.rounds):
        for name, url in targets.items():
            run = run_wrk(url, args.duration, **wrk)
            rounds[name].append(run)
            if name == EDGE:
                edge_requests += run.requests
            print(f"  round {round_no + 1}  {name:<15} {run.rps:>9,.0f} rps  p50 {run.p50_ms:.2f} ms  p99 {run.p99_ms:.2f} ms", flush=True)
    return rounds, edge_requests


def _accepted(run: LoadResult) -> int:
    return run.requests - run.status_counts.get("non_2xx_3xx", 0)


def measure_postback_peak(up: UpInfo, click_ids: list[str], args, tools) -> tuple[LoadResult, int, str]:
    """The postback accept path, closed loop, as many connections as the click peak: the
    median of ``args.rounds`` runs, the 202s of all runs (warm-up included), and the
    ``external_id`` prefix all of them share. Each run numbers its requests from 1, so
    each gets its own prefix under the shared one: a repeated ``external_id`` would be a
    replay (one conversion), not a new sale."""
    prefix = new_prefix("peak")
    wrk = dict(connections=args.connections, binary=tools["wrk"])
    accepted = _accepted(run_postback_peak(up.demo_postback_url, click_ids, args.warmup, prefix=f"{prefix}w-", **wrk))
    runs = []
    for round_no in range(args.rounds):
        run = run_postback_peak(up.demo_postback_url, click_ids, args.duration, prefix=f"{prefix}{round_no}-", **wrk)
        runs.append(run)
        accepted += _accepted(run)
        print(f"  round {round_no + 1}  {'postback':<15} {run.rps:>9,.0f} rps  p50 {run.p50_ms:.2f} ms  "
              f"p99 {run.p99_ms:.2f} ms  non-2xx {run.status_counts.get('non_2xx_3xx', 0)}", flush=True)
    return _median_run(runs), accepted, prefix


def measure_throughput(
    up: UpInfo, targets: dict[str, str], click_ids: list[str], args, tools,
) -> tuple[dict[str, list[LoadResult]], PostbackPeak]:
    print("peak throughput (wrk), ingest and conversion workers paused", flush=True)
    peak_start_s = time.time()
    with paused(component_pids(up, "worker")):
        rounds, edge_requests = measure_peaks(targets, args, tools)
        postback_peak, accepted, prefix = measure_postback_peak(up, click_ids, args, tools)
    print("draining the peak runs' clicks and postbacks into Postgres", flush=True)
    asyncio.run(wait_for_drain(up.database_url, peak_start_s, time.time(), expected=edge_requests))
    # wrk counts answers; a request cut off at the end may still have been accepted, so
    # rows >= 202s counted (the paced run matches them one by one).
    rows = asyncio.run(wait_for_conversions(up.database_url, prefix, accepted))
    return rounds, PostbackPeak(run=postback_peak, accepted=accepted, rows=rows)


def measure_fixed_rate(
    up: UpInfo, targets: dict[str, str], rate_rps: float, args, tools,
) -> tuple[LoadResult, ServerLatency, ClickLag, LoadResult]:
    """The edge at ``rate_rps`` with the whole stack live, as hey and as the edge saw it,
    its clicks' lag, and bare Starlette at that rate."""
    hey = dict(connections=args.hey_connections, binary=tools["hey"])
    before = scrape_latency_buckets(up.edge_url)
    print(f"edge at half peak (hey, {rate_rps:,.0f} rps), whole stack live", flush=True)
    start_s = time.time()
    edge = run_hey(targets[EDGE], args.duration, rate_rps, **hey)
    end_s = time.time()
    server = server_latency(before, scrape_latency_buckets(up.edge_url))
    print("click → row lag", flush=True)
    lag = asyncio.run(measure_click_lag(up.database_url, start_s, end_s, expected=edge.status_counts.get("302", 0)))
    print("bare Starlette at the same rate (the load tool's own floor)", flush=True)
    return edge, server, lag, run_hey(targets[BARE], args.duration, rate_rps, **hey)


def measure_postbacks_paced(up: UpInfo, click_ids: list[str], args) -> PostbackLag:
    count = int(args.postback_rate * args.duration)
    print(f"postbacks at {args.postback_rate:,.0f} rps ({count:,}), whole stack live; each 202 matched to its row",
          flush=True)
    sent, prefix = asyncio.run(run_postback_paced(
        up.demo_postback_url, click_ids, count=count, rate_rps=args.postback_rate, connections=args.hey_connections))
    return asyncio.run(measure_postback_lag(up.database_url, prefix, sent))


def measure(up: UpInfo, targets: dict[str, str], args, tools, busy_pct: float) -> BenchResults:
    print(f"making {args.postback_clicks:,} clicks for the postbacks to name", flush=True)
    click_ids = make_click_ids(up.demo_link, args.postback_clicks)
    rounds, postback_peak = measure_throughput(up, targets, click_ids, args, tools)
    peak = {name: _median_run(runs) for name, runs in rounds.items()}
    half, half_server, lag, half_bare = measure_fixed_rate(up, targets, peak[EDGE].rps / 2, args, tools)
    postback_lag = measure_postbacks_paced(up, click_ids, args)
    print(f"ingest capacity: one consumer, {args.ingest_clicks:,} queued clicks", flush=True)
    ingest = asyncio.run(measure_ingest_capacity(up.database_url, up.redis_url, up.demo_org_id, clicks=args.ingest_clicks))
    print(f"tenant timing: another org's offer id vs missing ids, {args.tenant_requests:,} requests each", flush=True)
    tenant = asyncio.run(measure_tenant_timing(
        up.api_url, up.database_url, up.demo_api_key, up.demo_org_id, requests_per_group=args.tenant_requests))
    return BenchResults(
        machine=this_machine(), cpu_busy_before_pct=busy_pct, duration_s=args.duration, rounds=args.rounds,
        peak=peak, peak_rounds=rounds, half_peak=half, half_peak_server=half_server, half_peak_bare=half_bare, click_lag=lag, ingest=ingest,
        tenant_timing=tenant, postback_peak=postback_peak, postback_lag=postback_lag,
    )


def run(args) -> BenchResults:
    tools = find_tools()
    busy_pct = cpu_busy_pct()
    if busy_pct > BUSY_WARN_PCT:
        print(f"bench: warning: the machine is already {busy_pct:.0f}% busy; figures will be low and noisy", flush=True)
    if not tools["nginx"]:
        print("bench: nginx not found, skipping its baseline (install with: sudo apt-get install -y nginx)", flush=True)
    with ExitStack() as stack:
        print("starting afftok up and the baselines", flush=True)
        up = stack.enter_context(running_stack())
        targets = {EDGE: up.demo_link, BARE: stack.enter_context(baselines.bare_starlette())}
        nginx_url = stack.enter_context(baselines.nginx(tools["nginx"]) if tools["nginx"] else nullcontext())
        if nginx_url:
            targets[NGINX] = nginx_url
        for url in (*targets.values(), up.api_url):
            require_loopback(url)
        results = measure(up, targets, args, tools, busy_pct)
    results.checks = evaluate(results)
    return results


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt  # so every started process is stopped on the way out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        results = run(args)
    except MissingTool as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; everything it started is stopped", file=sys.stderr)
        return 130
    path = save(results)
    print(f"\n{terminal_report(results)}\n\nresults: {path}\n\nmarkdown for bench/README.md:\n")
    print(markdown_report(results))
    return 0 if all(c.passed for c in results.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
