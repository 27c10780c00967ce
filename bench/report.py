"""Rendering results: an aligned table for the terminal, a markdown block for the README."""

from __future__ import annotations

from bench.load_result import LoadResult
from bench.results import BARE, NGINX, BenchResults


def _ratio(rps: float, base: float | None) -> str:
    return f"{rps / base:.2f}×" if base else "—"


def peak_rows(results: BenchResults) -> list[list[str]]:
    bare = results.peak[BARE].rps
    nginx = results.peak[NGINX].rps if NGINX in results.peak else None
    rows = [["target", "rps", "p50", "p99", "vs bare Starlette", "vs nginx"]]
    for name, run in results.peak.items():
        rows.append([name, f"{run.rps:,.0f}", f"{run.p50_ms:.2f} ms", f"{run.p99_ms:.2f} ms", _ratio(run.rps, bare), _ratio(run.rps, nginx)])
    half, server = results.half_peak, results.half_peak_server
    rows.append(_hey_row("edge, half its peak", half))
    if server is not None:
        rows.append(["edge, half its peak (server-side histogram)", f"{server.clicks / half.duration_s:,.0f}",
                     _ms(server.p50_ms), _ms(server.p99_ms), "", ""])
    rows.append(_hey_row(f"{BARE}, same rate", results.half_peak_bare))
    if results.postback_peak is not None:
        run = results.postback_peak.run
        rows.append(["postback accept (wrk)", f"{run.rps:,.0f}", f"{run.p50_ms:.2f} ms", f"{run.p99_ms:.2f} ms",
                     _ratio(run.rps, bare), _ratio(run.rps, nginx)])
    lag = results.postback_lag
    if lag is not None:
        rows.append([f"postback accept, paced ({lag.sent:,} at a fixed rate, as the sender saw them)", "",
                     _ms(lag.accept_p50_ms), _ms(lag.accept_p99_ms), "", ""])
    return rows


def _hey_row(label: str, run: LoadResult) -> list[str]:
    return [f"{label} (hey, {run.target_rps:,.0f} rps asked)", f"{run.rps:,.0f}", _ms(run.p50_ms), _ms(run.p99_ms), "", ""]


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def tenant_rows(results: BenchResults) -> list[list[str]]:
    timing = results.tenant_timing
    rows = [["GET /v1/offers/{id} with org A's key", "requests", "status", "p50", "p90", "p99"]]
    for group, run in timing.groups.items():
        statuses = ", ".join(f"{status} ×{count:,}" for status, count in run.statuses.items())
        rows.append([group, f"{run.requests:,}", statuses, _ms(run.p50_ms), _ms(run.p90_ms), _ms(run.p99_ms)])
    low, high = timing.median_diff_ci_ms
    rows.append(["difference of medians (other org − missing)", "", "", f"{timing.median_diff_ms:+.3f} ms",
                 f"95 % CI {low:+.3f} to {high:+.3f} ms", ""])
    return rows


def check_rows(results: BenchResults) -> list[list[str]]:
    return [["check", "target", "measured", "result"]] + [
        [c.name, c.target, c.measured, "PASS" if c.passed else "FAIL"] for c in results.checks
    ]


def text_table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("---" for _ in rows[0]) + "|")
    return "\n".join(lines)


def _method(results: BenchResults) -> str:
    return (
        f"wrk -t1 -c{results.peak[BARE].connections}, {results.duration_s:g} s per run, median of "
        f"{results.rounds} interleaved round(s) per target ({', '.join(results.peak_rounds)}); ingest worker paused "
        f"during the peak runs. Half peak: hey -c{results.half_peak.connections} at a fixed rate with the "
        f"whole stack live, read by hey and by the edge's own latency histogram (/metrics, before minus after, "
        f"interpolated inside a bucket), and bare Starlette at the same rate as the load tool's floor. Ingest: one consumer draining {results.ingest.clicks:,} queued clicks alone "
        f"({results.ingest.seconds:.1f} s). Postbacks: wrk with a Lua script naming real click ids and fresh "
        f"external ids, workers paused, as many connections as the click peak; then a fixed-rate sender with the whole "
        f"stack live, every 202 matched to its conversion row, lag = row created_at − edge received_at. Tenant timing: {results.tenant_timing.requests_per_group:,} "
        f"requests per group, shuffled, one in flight over one keep-alive connection, API rate limit off."
    )


def terminal_report(results: BenchResults) -> str:
    return f"{text_table(peak_rows(results))}\n\n{text_table(tenant_rows(results))}\n\n{text_table(check_rows(results))}"


def markdown_report(results: BenchResults) -> str:
    return (
        f"Machine: {results.machine.describe()}; {results.cpu_busy_before_pct:.0f}% CPU busy just before the run.\n\n"
        f"{_method(results)}\n\n"
        f"{markdown_table(peak_rows(results))}\n\n{markdown_table(tenant_rows(results))}\n\n"
        f"{markdown_table(check_rows(results))}\n"
    )
